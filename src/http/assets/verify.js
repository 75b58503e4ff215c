// Light-client verification of a transfer, without trusting the node's word for it: the page
// fetches the best chain's headers and checks them itself, then checks the transfer's Merkle
// proof against the tx_root of the header that holds it (proto/PROTOCOL.md sections 2, 5.1, 6.1).
//
// What is checked, exactly: header 0 hashes to the chain id (the genesis hash) that this
// wallet signs with; every later header has the height of its place, names the previous
// header's hash as prev_hash, carries valid canonical compact bits, and hashes to a number at
// most the target its own bits state. Not checked: that each header's bits follow the
// retarget rule (section 6.3), timestamps, or the block bodies: a node could serve a chain
// of headers mined at an easier difficulty than consensus requires, at the cost of that work.
"use strict";

const V = (() => {
  const HEADER_LEN = 96;

  function hexToBytes(h) {
    if (typeof h !== "string" || !/^([0-9a-f]{2})*$/.test(h)) throw new Error("not lower-case hex: " + String(h).slice(0, 20));
    const out = new Uint8Array(h.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(2 * i, 2), 16);
    return out;
  }
  function hex(b) { return [...b].map((x) => x.toString(16).padStart(2, "0")).join(""); }
  async function sha256(...parts) {
    const len = parts.reduce((n, p) => n + p.length, 0);
    const buf = new Uint8Array(len);
    let at = 0;
    for (const p of parts) { buf.set(p, at); at += p.length; }
    return new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
  }
  function equal(a, b) { return a.length === b.length && a.every((x, i) => x === b[i]); }
  function bitLength(n) { return n === 0n ? 0 : n.toString(2).length; }

  // The 96-byte header (section 2), integers big-endian.
  function parseHeader(bytes) {
    if (bytes.length !== HEADER_LEN) throw new Error(`a header is ${HEADER_LEN} bytes, got ${bytes.length}`);
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    return {
      version: v.getUint32(0, false),
      height: v.getBigUint64(4, false),
      prevHash: bytes.slice(12, 44),
      txRoot: bytes.slice(44, 76),
      bits: v.getUint32(84, false),
    };
  }

  // Compact target encoding (section 6.1, Bitcoin's GetCompact, rounding down).
  function encodeCompact(target) {
    let n = Math.ceil(bitLength(target) / 8);
    let m = n <= 3 ? target << BigInt(8 * (3 - n)) : target >> BigInt(8 * (n - 3));
    if (m & 0x800000n) { m >>= 8n; n += 1; }
    return (n * 0x1000000 + Number(m)) >>> 0;
  }

  // The target `bits` states, or an error naming the rule it breaks (section 6.1).
  function decodeCompact(bits) {
    const e = bits >>> 24;
    const m = BigInt(bits & 0x007fffff);
    const hexBits = bits.toString(16).padStart(8, "0");
    if (bits & 0x00800000) throw new Error(`bits ${hexBits} are negative`);
    if (e > 3 && m !== 0n && bitLength(m) + 8 * (e - 3) > 256) throw new Error(`bits ${hexBits} overflow 256 bits`);
    const target = e <= 3 ? m >> BigInt(8 * (3 - e)) : m << BigInt(8 * (e - 3));
    if (target === 0n) throw new Error(`bits ${hexBits} state a zero target`);
    if (encodeCompact(target) !== bits) throw new Error(`bits ${hexBits} are not canonical`);
    return target;
  }

  // Checks a header chain from genesis (see the file's comment); returns the hashes.
  async function checkChain(headers, chainId) {
    const hashes = [];
    for (let i = 0; i < headers.length; i++) {
      const h = parseHeader(headers[i]);
      const hash = await sha256(headers[i]);
      if (h.height !== BigInt(i)) throw new Error(`header ${i} says height ${h.height}`);
      if (i === 0) {
        // Genesis is defined, not mined: its hash is the chain id.
        if (hex(hash) !== chainId) throw new Error(`header 0 hashes to ${hex(hash)}, not the chain id ${chainId}`);
      } else {
        if (!equal(h.prevHash, hashes[i - 1])) throw new Error(`header ${i} does not link to header ${i - 1}: prev_hash ${hex(h.prevHash)}, expected ${hex(hashes[i - 1])}`);
        const target = decodeCompact(h.bits);
        if (BigInt("0x" + hex(hash)) > target) throw new Error(`header ${i} (${hex(hash)}) does not meet the target of its bits ${h.bits.toString(16).padStart(8, "0")}`);
      }
      hashes.push(hash);
    }
    return hashes;
  }

  // RFC 9162 section 2.1.3.2 over the RFC 6962 tree (PROTOCOL.md 5.1): the root the path leads
  // to from `txid` at `pos` of `count`, or an error if the path's length does not fit.
  async function rootFromPath(txid, pos, count, path) {
    if (!(Number.isSafeInteger(pos) && Number.isSafeInteger(count) && pos >= 0 && pos < count)) {
      throw new Error(`position ${pos} is not below the transaction count ${count}`);
    }
    let f = pos, s = count - 1;
    let r = await sha256(Uint8Array.of(0), txid);
    for (const p of path) {
      if (s === 0) throw new Error(`the path is too long for position ${pos} of ${count}`);
      if (f % 2 === 1 || f === s) {
        r = await sha256(Uint8Array.of(1), p, r);
        while (f % 2 === 0 && f !== 0) { f = Math.floor(f / 2); s = Math.floor(s / 2); }
      } else {
        r = await sha256(Uint8Array.of(1), r, p);
      }
      f = Math.floor(f / 2); s = Math.floor(s / 2);
    }
    if (s !== 0) throw new Error(`the path is too short for position ${pos} of ${count}`);
    return r;
  }

  // Every header of the best chain, from genesis, in pages.
  async function fetchHeaders() {
    const headers = [];
    for (;;) {
      const page = await GC.get(`/headers?from=${headers.length}&count=500`);
      if (page.headers.length === 0) break;
      for (const h of page.headers) headers.push(hexToBytes(h));
      if (headers.length > page.tip_height) break;
    }
    return headers;
  }

  // Verifies `txidHex`; resolves to a description of the proof, or throws saying what failed.
  async function verify(txidHex) {
    if (!/^[0-9a-f]{64}$/.test(txidHex)) throw new Error("a txid is 64 lower-case hex digits");
    const proof = await GC.get(`/tx/${txidHex}/merkle-proof`);
    const id = await GC.get("/node/identity");
    const headers = await fetchHeaders();
    const hashes = await checkChain(headers, id.chain_id);
    const h = proof.block_height;
    if (!(Number.isSafeInteger(h) && h >= 0 && h < headers.length)) {
      throw new Error(`the proof names block #${h}, not in the checked header chain (height ${headers.length - 1})`);
    }
    if (hex(hashes[h]) !== proof.block_hash) {
      throw new Error(`the proof names block ${proof.block_hash}, but the checked chain has ${hex(hashes[h])} at height ${h}`);
    }
    const path = proof.merkle.map(hexToBytes);
    if (path.some((p) => p.length !== 32)) throw new Error("a proof hash is not 32 bytes");
    const root = await rootFromPath(hexToBytes(txidHex), proof.pos, proof.tx_count, path);
    const expected = parseHeader(headers[h]).txRoot;
    if (!equal(root, expected)) {
      throw new Error(`the proof leads to root ${hex(root)}, not block #${h}'s tx_root ${hex(expected)}`);
    }
    return { height: h, confirmations: headers.length - h, headers: headers.length };
  }

  function init() {
    document.getElementById("verify").addEventListener("submit", async (e) => {
      e.preventDefault();
      GC.show("verify-out", "checking…");
      try {
        const txid = document.getElementById("verify-txid").value.trim().toLowerCase();
        const r = await verify(txid);
        GC.show("verify-out",
          `✓ in block #${r.height} (${r.confirmations} confirmation${r.confirmations === 1 ? "" : "s"}), header chain checked: ` +
          `${r.headers} headers from genesis, each linked to its parent and meeting the target its bits state`, "ok");
      } catch (err) {
        GC.show("verify-out", "✗ not verified: " + (err instanceof GC.ApiError ? `${err.code}: ${err.message}` : err.message), "err");
      }
    });
  }

  return { init, verify, checkChain, rootFromPath, decodeCompact };
})();

V.init();
