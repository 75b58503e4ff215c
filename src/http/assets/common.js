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

  return { takeTokenFromUrl, token, setToken, request, get, action, ApiError, short, time, el, show, showError, events };
})();
