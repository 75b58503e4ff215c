// The browser wallet: an Ed25519 key made and kept here (WebCrypto), transfers built and signed
// exactly as proto/PROTOCOL.md section 4 says, and posted as hex to POST /tx.
"use strict";

const W = (() => {
  const SECRET_KEY = "gossipchain.wallet.secret";
  // PKCS #8 wrapping of a raw 32-byte Ed25519 secret (RFC 8410): this fixed prefix, then the key.
  const PKCS8_PREFIX = hexToBytes("302e020100300506032b657004220420");
  const DOMAIN = new TextEncoder().encode("gossipchain/tx/v1");
  let key = null; // { secret: Uint8Array, address: Uint8Array, signKey: CryptoKey }

  function hexToBytes(h) {
    if (!/^([0-9a-fA-F]{2})*$/.test(h)) throw new Error("not hex");
    const out = new Uint8Array(h.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(2 * i, 2), 16);
    return out;
  }
  function bytesToHex(b) { return [...b].map((x) => x.toString(16).padStart(2, "0")).join(""); }
  function b64urlToBytes(s) {
    const b = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(b, (c) => c.charCodeAt(0));
  }

  async function fromSecret(secret) {
    const pkcs8 = new Uint8Array(48);
    pkcs8.set(PKCS8_PREFIX);
    pkcs8.set(secret, 16);
    const signKey = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
    const jwk = await crypto.subtle.exportKey("jwk", signKey);
    return { secret, address: b64urlToBytes(jwk.x), signKey };
  }

  async function generate() {
    const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
    return fromSecret(pkcs8.slice(pkcs8.length - 32));
  }

  function u64(name, text) {
    if (!/^\d+$/.test(String(text).trim())) throw new Error(`${name} must be a whole number`);
    const v = BigInt(String(text).trim());
    if (v > 0xffffffffffffffffn) throw new Error(`${name} is above the u64 range`);
    return v;
  }

  // The transfer without its signature: tag 0x01, from, to, amount, fee, nonce (89 bytes).
  function unsignedTransfer(from, to, amount, fee, nonce) {
    const out = new Uint8Array(89);
    const view = new DataView(out.buffer);
    out[0] = 0x01;
    out.set(from, 1);
    out.set(to, 33);
    view.setBigUint64(65, amount, false);
    view.setBigUint64(73, fee, false);
    view.setBigUint64(81, nonce, false);
    return out;
  }

  // Signs `domain || chain id || unsigned transfer` (138 bytes); returns the 153-byte encoding.
  async function signTransfer(k, chainId, to, amount, fee, nonce) {
    const body = unsignedTransfer(k.address, to, amount, fee, nonce);
    const msg = new Uint8Array(DOMAIN.length + 32 + body.length);
    msg.set(DOMAIN);
    msg.set(chainId, DOMAIN.length);
    msg.set(body, DOMAIN.length + 32);
    const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, k.signKey, msg));
    const tx = new Uint8Array(153);
    tx.set(body);
    tx.set(sig, 89);
    return tx;
  }

  async function refresh() {
    if (!key) return;
    const addr = bytesToHex(key.address);
    document.getElementById("address").textContent = addr;
    try {
      const a = await GC.get("/address/" + addr);
      document.getElementById("balance").textContent = a.balance + (a.pending_spend ? ` (${a.pending_spend} pending)` : "");
      document.getElementById("nonce").textContent = a.next_nonce;
    } catch (e) { GC.showError("key-out", e); }
  }

  async function use(k) {
    key = k;
    localStorage.setItem(SECRET_KEY, bytesToHex(k.secret));
    await refresh();
  }

  async function init() {
    const saved = localStorage.getItem(SECRET_KEY);
    try {
      await use(saved ? await fromSecret(hexToBytes(saved)) : await generate());
    } catch (e) { GC.show("key-out", "cannot use Ed25519 in this browser: " + e.message, "err"); }

    document.getElementById("generate").addEventListener("click", async () => {
      if (key && !confirm("Replace the current key? Export it first if it holds coins.")) return;
      await use(await generate());
      GC.show("key-out", "new key made", "ok");
    });
    document.getElementById("export").addEventListener("click", () => {
      if (key) GC.show("key-out", "secret (keep it private; the same format as wallet.key): " + bytesToHex(key.secret));
    });
    document.getElementById("import").addEventListener("submit", async (e) => {
      e.preventDefault();
      const text = document.getElementById("import-secret").value.trim();
      try {
        if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new Error("a key is 64 hex digits");
        await use(await fromSecret(hexToBytes(text)));
        document.getElementById("import-secret").value = "";
        GC.show("key-out", "key imported", "ok");
      } catch (err) { GC.showError("key-out", err); }
    });
    document.getElementById("send").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const toText = document.getElementById("to").value.trim();
        if (!/^[0-9a-fA-F]{64}$/.test(toText)) throw new Error("the recipient is 64 hex digits");
        const amount = u64("amount", document.getElementById("amount").value);
        const fee = u64("fee", document.getElementById("fee").value);
        const id = await GC.get("/node/identity");
        const acct = await GC.get("/address/" + bytesToHex(key.address));
        const tx = await signTransfer(key, hexToBytes(id.chain_id), hexToBytes(toText), amount, fee, BigInt(acct.next_nonce));
        const txid = await GC.request("POST", "/tx", undefined, { text: bytesToHex(tx) });
        GC.show("send-out", "sent " + txid, "ok");
        await refresh();
      } catch (err) { GC.showError("send-out", err); }
    });
    GC.events({ tip: () => refresh(), tx: () => refresh() }, () => {});
  }

  return { init, hexToBytes, bytesToHex, signTransfer, fromSecret };
})();

W.init();
