// The browser wallet: an Ed25519 key made and kept here (WebCrypto), transfers built and signed
// exactly as proto/PROTOCOL.md section 4 says, and posted as hex to POST /tx. A new key comes
// from 24 BIP 39 words, shown once, and the words restore it, here or with `gossipchain wallet
// restore`: the same derivation as the node's (proto/PROTOCOL.md section 8).
"use strict";

const W = (() => {
  const SECRET_KEY = "gossipchain.wallet.secret";
  // PKCS #8 wrapping of a raw 32-byte Ed25519 secret (RFC 8410): this fixed prefix, then the key.
  const PKCS8_PREFIX = hexToBytes("302e020100300506032b657004220420");
  const DOMAIN = new TextEncoder().encode("gossipchain/tx/v1");
  // m/44'/26467'/0'/0'/0', every index hardened (SLIP-0010 Ed25519).
  const PATH = [44, 26467, 0, 0, 0];
  const enc = new TextEncoder();
  let key = null; // { secret: Uint8Array, address: Uint8Array, signKey: CryptoKey }
  let hrp = null; // the node's address prefix: gc or gct
  let wordList = null; // BIP 39 English, served by the node (the list its Rust code uses)

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

  async function words() {
    if (!wordList) {
      const r = await fetch("/assets/bip39-english.txt");
      const list = (await r.text()).split("\n").filter(Boolean);
      if (list.length !== 2048) throw new Error("the BIP 39 word list did not load");
      wordList = list;
    }
    return wordList;
  }
  async function sha256(b) { return new Uint8Array(await crypto.subtle.digest("SHA-256", b)); }
  async function hmacSha512(k, data) {
    const hk = await crypto.subtle.importKey("raw", k, { name: "HMAC", hash: "SHA-512" }, false, ["sign"]);
    return new Uint8Array(await crypto.subtle.sign("HMAC", hk, data));
  }
  const bitString = (bytes) => [...bytes].map((b) => b.toString(2).padStart(8, "0")).join("");

  // BIP 39: the entropy and the first ENT/32 bits of its SHA-256, in 11-bit word indices.
  async function entropyToWords(entropy) {
    const list = await words();
    const bits = (bitString(entropy) + bitString(await sha256(entropy))).slice(0, entropy.length * 8 * 33 / 32);
    return bits.match(/.{11}/g).map((b) => list[parseInt(b, 2)]);
  }

  // Checks typed words as `gossipchain wallet restore` does: count, list, checksum.
  async function checkWords(text) {
    const ws = text.trim().toLowerCase().split(/\s+/).filter(Boolean);
    if (![12, 15, 18, 21, 24].includes(ws.length)) throw new Error(`a backup is 24 words (or 12, 15, 18, 21); got ${ws.length}`);
    const list = await words();
    const bits = ws.map((w, i) => {
      const j = list.indexOf(w);
      if (j < 0) throw new Error(`word ${i + 1}, '${w}', is not in the BIP 39 English word list`);
      return j.toString(2).padStart(11, "0");
    }).join("");
    const entBits = bits.length * 32 / 33;
    const entropy = Uint8Array.from(bits.slice(0, entBits).match(/.{8}/g), (b) => parseInt(b, 2));
    if (bitString(await sha256(entropy)).slice(0, bits.length - entBits) !== bits.slice(entBits)) {
      throw new Error("the words' checksum does not match: a word is wrong, missing or out of order (compare them with the backup)");
    }
    return ws;
  }

  // SLIP-0010 for Ed25519: the master key from HMAC-SHA512("ed25519 seed", seed), then one
  // HMAC-SHA512(chain code, 0x00 || key || index + 2^31) per (hardened) index.
  async function slip10(seed, path) {
    let i = await hmacSha512(enc.encode("ed25519 seed"), seed);
    for (const index of path) {
      const data = new Uint8Array(37);
      data.set(i.slice(0, 32), 1);
      new DataView(data.buffer).setUint32(33, (index | 0x80000000) >>> 0, false);
      i = await hmacSha512(i.slice(32), data);
    }
    return i.slice(0, 32);
  }

  // The wallet secret of the words: the BIP 39 seed (PBKDF2-HMAC-SHA512, 2048 rounds, salt
  // "mnemonic", no passphrase), then SLIP-0010 along PATH.
  async function secretFromWords(ws) {
    const pw = await crypto.subtle.importKey("raw", enc.encode(ws.join(" ")), "PBKDF2", false, ["deriveBits"]);
    const seed = new Uint8Array(await crypto.subtle.deriveBits(
      { name: "PBKDF2", hash: "SHA-512", salt: enc.encode("mnemonic"), iterations: 2048 }, pw, 512));
    return slip10(seed, PATH);
  }

  // A new key from 24 fresh words; the words are shown once.
  async function generate() {
    const ws = await entropyToWords(crypto.getRandomValues(new Uint8Array(32)));
    const k = await fromSecret(await secretFromWords(ws));
    showWords(ws);
    return k;
  }

  function showWords(ws) {
    const ol = document.getElementById("words");
    ol.replaceChildren(...ws.map((w) => GC.el("li", { text: w })));
    document.getElementById("words-box").hidden = false;
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
    if (!key || !hrp) return;
    const addr = GC.bech32mEncode(hrp, key.address);
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
      hrp = (await GC.get("/node/identity")).address_prefix;
      document.getElementById("to").placeholder = `recipient address (${hrp}1…, or 64 hex digits)`;
    } catch (e) { GC.showError("key-out", e); }
    try {
      await use(saved ? await fromSecret(hexToBytes(saved)) : await generate());
    } catch (e) { GC.show("key-out", "cannot use Ed25519 in this browser: " + e.message, "err"); }

    document.getElementById("generate").addEventListener("click", async () => {
      if (key && !confirm("Replace the current key? Keep its words or export it first if it holds coins.")) return;
      await use(await generate());
      GC.show("key-out", "new wallet made: write down its words", "ok");
    });
    document.getElementById("words-done").addEventListener("click", () => {
      document.getElementById("words").replaceChildren();
      document.getElementById("words-box").hidden = true;
    });
    document.getElementById("restore").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const ws = await checkWords(document.getElementById("restore-words").value);
        if (key && !confirm("Replace the current key with the restored one?")) return;
        await use(await fromSecret(await secretFromWords(ws)));
        document.getElementById("restore-words").value = "";
        GC.show("key-out", "wallet restored from its words", "ok");
      } catch (err) { GC.showError("key-out", err); }
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
        const to = GC.parseAddress(document.getElementById("to").value, hrp);
        const amount = u64("amount", document.getElementById("amount").value);
        const fee = u64("fee", document.getElementById("fee").value);
        const id = await GC.get("/node/identity");
        const acct = await GC.get("/address/" + bytesToHex(key.address));
        const tx = await signTransfer(key, hexToBytes(id.chain_id), to, amount, fee, BigInt(acct.next_nonce));
        const txid = await GC.request("POST", "/tx", undefined, { text: bytesToHex(tx) });
        GC.show("send-out", "sent " + txid, "ok");
        await refresh();
      } catch (err) { GC.showError("send-out", err); }
    });
    GC.events({ tip: () => refresh(), tx: () => refresh() }, () => {});
  }

  return { init, hexToBytes, bytesToHex, signTransfer, fromSecret, entropyToWords, checkWords, secretFromWords, slip10 };
})();

W.init();
