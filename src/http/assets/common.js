// Shared by the dashboard and the wallet page: API calls, the action token, formatting.
"use strict";

const GC = (() => {
  const TOKEN_KEY = "gossipchain.token";

  // The node prints a dashboard URL carrying the token in its fragment (never sent to the
  // server). Keep it for this tab's origin and remove it from the address bar.
  function takeTokenFromUrl() {
    const m = location.hash.match(/token=([0-9a-f]{64})/);
    if (m) {
      localStorage.setItem(TOKEN_KEY, m[1]);
      history.replaceState(null, "", location.pathname + location.search);
    }
  }

  function token() { return localStorage.getItem(TOKEN_KEY) || ""; }
  function setToken(t) { localStorage.setItem(TOKEN_KEY, t.trim()); }

  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  async function request(method, path, body, opts = {}) {
    const headers = {};
    let payload;
    if (opts.text !== undefined) {
      headers["Content-Type"] = "text/plain";
      payload = opts.text;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    if (opts.auth) headers["Authorization"] = "Bearer " + token();
    const r = await fetch(path, { method, headers, body: payload });
    const type = r.headers.get("content-type") || "";
    const data = type.includes("json") ? await r.json() : await r.text();
    if (!r.ok) {
      if (data && data.code) throw new ApiError(r.status, data.code, data.message);
      throw new ApiError(r.status, "http_" + r.status, String(data || r.statusText));
    }
    return data;
  }

  const get = (path) => request("GET", path);
  const action = (path, body) => request("POST", path, body, { auth: true });

  function short(h, n = 8) { return h ? h.slice(0, n) + "…" + h.slice(-4) : ""; }

  // Addresses as text: bech32m (BIP 350) of the 32-byte key, prefix gc (default chain) or gct
  // (any other), as proto/PROTOCOL.md section 8 says; the node's Rust parser is the reference.
  const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
  const BECH32M_CONST = 0x2bc830a3;
  function polymod(values) {
    const GEN = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let chk = 1;
    for (const v of values) {
      const top = chk >>> 25;
      chk = (((chk & 0x1ffffff) << 5) ^ v) >>> 0;
      for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk = (chk ^ GEN[i]) >>> 0;
    }
    return chk;
  }
  function hrpExpand(hrp) {
    const c = [...hrp].map((x) => x.charCodeAt(0));
    return [...c.map((x) => x >> 5), 0, ...c.map((x) => x & 31)];
  }
  // Regroups bits (8 to 5 with zero padding, or 5 to 8 refusing non-zero padding).
  function regroup(data, from, to, pad) {
    let acc = 0, bits = 0;
    const out = [];
    for (const v of data) {
      acc = (acc << from) | v;
      bits += from;
      while (bits >= to) { bits -= to; out.push((acc >> bits) & ((1 << to) - 1)); }
      acc &= (1 << bits) - 1;
    }
    if (pad && bits) out.push((acc << (to - bits)) & ((1 << to) - 1));
    else if (!pad && (bits >= from || acc)) return null;
    return out;
  }
  function bech32mEncode(hrp, bytes) {
    const data = regroup(bytes, 8, 5, true);
    const pm = polymod([...hrpExpand(hrp), ...data, 0, 0, 0, 0, 0, 0]) ^ BECH32M_CONST;
    const chk = [0, 1, 2, 3, 4, 5].map((i) => (pm >>> (5 * (5 - i))) & 31);
    return hrp + "1" + [...data, ...chk].map((d) => CHARSET[d]).join("");
  }
  // Any bech32m string (BIP 350's rules): { hrp, data: 5-bit values without the checksum }.
  function bech32mDecode(s) {
    if (s.length > 90) throw new Error("an address is at most 90 characters");
    for (const ch of s) {
      const c = ch.charCodeAt(0);
      if (c < 33 || c > 126) throw new Error(`'${ch}' cannot be in an address`);
    }
    if (s !== s.toLowerCase() && s !== s.toUpperCase()) throw new Error("an address is all lower case or all upper case, not mixed");
    s = s.toLowerCase();
    const pos = s.lastIndexOf("1");
    if (pos < 1 || pos + 7 > s.length) throw new Error("not a bech32m string");
    const data = [];
    for (const ch of s.slice(pos + 1)) {
      const d = CHARSET.indexOf(ch);
      if (d < 0) throw new Error(`'${ch}' cannot be in an address (bech32m uses the digits 0, 2-9 and the letters except b, i, o)`);
      data.push(d);
    }
    const hrp = s.slice(0, pos);
    if (polymod([...hrpExpand(hrp), ...data]) !== BECH32M_CONST) {
      throw new Error("the address's checksum does not match: a character is mistyped, missing or extra (compare it with the original)");
    }
    return { hrp, data: data.slice(0, -6) };
  }
  // An address typed on a node whose addresses start with `hrp`: bech32m or 64 hex digits.
  // Returns the 32 bytes (the node still checks that they are a public key).
  function parseAddress(text, hrp) {
    const s = text.trim();
    if (/^[0-9a-fA-F]{64}$/.test(s)) return Uint8Array.from(s.match(/../g), (h) => parseInt(h, 16));
    if (!s.includes("1")) throw new Error(`an address is ${hrp}1 and 58 more letters and digits (bech32m), or 64 hex digits; got ${s.length} characters`);
    const lower = s.toLowerCase();
    const prefix = lower.slice(0, lower.lastIndexOf("1"));
    if (prefix !== "gc" && prefix !== "gct") throw new Error(`unknown address prefix '${prefix}1': addresses start with gc1 (the default chain) or gct1`);
    const { data } = bech32mDecode(s);
    if (prefix !== hrp) throw new Error(`this address is for ${prefix === "gc" ? "the default chain" : "a test chain"}, but this node's addresses start with ${hrp}1`);
    const bytes = data.length === 52 ? regroup(data, 5, 8, false) : null;
    if (!bytes) throw new Error("not an address: it does not hold a 32-byte key");
    return Uint8Array.from(bytes);
  }
  function time(ms) { return ms == null ? "" : new Date(ms).toLocaleTimeString(); }
  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }
  function show(id, text, kind) {
    const o = document.getElementById(id);
    o.textContent = text;
    o.className = "out" + (kind ? " " + kind : "");
  }
  function showError(id, e) {
    show(id, e instanceof ApiError ? `${e.code}: ${e.message}` : String(e), "err");
  }

  // Opens the event stream; calls handlers[name](data, seq) for each event (seq: the event's
  // number, its SSE id), and onState(live).
  function events(handlers, onState) {
    const src = new EventSource("/events");
    src.onopen = () => onState(true);
    src.onerror = () => onState(false);
    for (const [name, fn] of Object.entries(handlers)) {
      src.addEventListener(name, (ev) => fn(JSON.parse(ev.data), Number(ev.lastEventId)));
    }
    return src;
  }

  return {
    takeTokenFromUrl, token, setToken, request, get, action, ApiError, short, time, el, show, showError, events,
    bech32mEncode, bech32mDecode, parseAddress,
  };
})();
