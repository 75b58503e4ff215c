// The dashboard: status, chain, block tree, mempool and peers, updated live from /events;
// look-ups; and the node's actions (send, mine, dial) with the token.
"use strict";

GC.takeTokenFromUrl();
const $ = (id) => document.getElementById(id);

function setText(id, v) { $(id).textContent = v; }

// Answers may come back in another order than asked, and after events newer than them: only
// the answer to the latest request of each kind is shown, and the height and tip of a status
// asked before the latest tip event are not (the event's are newer).
let tipEvents = 0;
const latest = {};
async function fresh(path) {
  const n = (latest[path] = (latest[path] || 0) + 1);
  const v = await GC.get(path);
  return n === latest[path] ? v : null;
}

async function refreshStatus() {
  const seen = tipEvents;
  const s = await fresh("/node/status");
  if (!s) return;
  if (seen === tipEvents) {
    setText("height", s.height);
    setText("tip", GC.short(s.tip, 16));
    $("tip").title = s.tip;
  }
  setText("peers-count", s.peers);
  setText("mempool-count", s.mempool);
  setText("mining", s.mining ? "on" : "off");
  setText("syncing", s.syncing ? "yes" : "no");
  $("identity").textContent = `peer id ${s.peer_id} · chain ${s.chain_id} · wallet ${s.address} · p2p ${s.listen_addresses.join(" ")}`;
}

function blockLink(hash, text) {
  return GC.el("a", { href: "#/block/" + hash, text: text || GC.short(hash) });
}

async function refreshBlocks(newHash) {
  const list = await fresh("/blocks");
  if (!list) return;
  const tbody = $("blocks").querySelector("tbody");
  tbody.replaceChildren(...list.map((b) => {
    const tr = GC.el("tr", b.id === newHash ? { class: "new" } : {},
      GC.el("td", { text: b.height }),
      GC.el("td", { class: "mono" }, blockLink(b.id)),
      GC.el("td", { text: b.tx_count }),
      GC.el("td", { text: GC.time(b.timestamp) }));
    return tr;
  }));
}

async function refreshMempool() {
  const txs = await fresh("/mempool/txs");
  if (!txs) return;
  const tbody = $("mempool").querySelector("tbody");
  if (!txs.length) {
    tbody.replaceChildren(GC.el("tr", {}, GC.el("td", { colspan: 4, class: "hint", text: "no pending transfers" })));
    return;
  }
  tbody.replaceChildren(...txs.slice(0, 50).map((t) => GC.el("tr", {},
    GC.el("td", { class: "mono" }, GC.el("a", { href: "#/tx/" + t.txid, text: GC.short(t.txid) })),
    GC.el("td", { class: "mono", text: GC.short(t.from, 9) + " → " + GC.short(t.to, 9) }),
    GC.el("td", { text: t.amount }),
    GC.el("td", { text: t.fee }))));
}

async function refreshPeers() {
  const peers = await fresh("/node/peers");
  if (!peers) return;
  const tbody = $("peers").querySelector("tbody");
  if (!peers.length) {
    tbody.replaceChildren(GC.el("tr", {}, GC.el("td", { colspan: 4, class: "hint", text: "no peers connected" })));
    return;
  }
  tbody.replaceChildren(...peers.map((p) => GC.el("tr", {},
    GC.el("td", { class: "mono", title: p.peer_id, text: GC.short(p.peer_id, 12) }),
    GC.el("td", { text: p.found_by }),
    GC.el("td", { text: p.ping_ms == null ? "–" : p.ping_ms.toFixed(1) + " ms" }),
    GC.el("td", { class: "mono", text: p.addresses.join(", ") }))));
}

function drawTree() { BlockTree.draw($("tree"), (h) => { location.hash = "#/block/" + h; }); }

async function refreshTree() {
  await BlockTree.refresh(() => GC.get("/tree"));
  drawTree();
}

// Detail pages: #/block/<hash>, #/tx/<txid>, #/address/<address>.
function dl(pairs) {
  const d = GC.el("dl");
  for (const [k, v] of pairs) d.append(GC.el("dt", { text: k }), GC.el("dd", {}, v instanceof Node ? v : String(v)));
  return d;
}

async function showDetail() {
  const m = location.hash.match(/^#\/(block|tx|address)\/([0-9a-zA-Z]+)$/);
  const box = $("detail");
  if (!m) { box.hidden = true; return; }
  box.hidden = false;
  const [, kind, id] = m;
  const body = $("detail-body");
  try {
    if (kind === "block") {
      const b = await GC.get("/block/" + id);
      setText("detail-title", `block #${b.height}`);
      const txs = GC.el("table", {}, GC.el("thead", {}, GC.el("tr", {},
        ...["txid", "kind", "from", "to", "amount", "fee"].map((h) => GC.el("th", { text: h })))));
      const tb = GC.el("tbody");
      for (const t of b.txs) tb.append(GC.el("tr", {},
        GC.el("td", { class: "mono" }, GC.el("a", { href: "#/tx/" + t.txid, text: GC.short(t.txid) })),
        GC.el("td", { text: t.kind }),
        GC.el("td", { class: "mono" }, t.from ? GC.el("a", { href: "#/address/" + t.from, text: GC.short(t.from, 10) }) : "–"),
        GC.el("td", { class: "mono" }, GC.el("a", { href: "#/address/" + t.to, text: GC.short(t.to, 10) })),
        GC.el("td", { text: t.amount }), GC.el("td", { text: t.fee })));
      txs.append(tb);
      body.replaceChildren(dl([
        ["hash", b.id], ["height", b.height], ["parent", blockLink(b.previousblockhash, b.previousblockhash)],
        ["best chain", b.in_best_chain ? "yes" : "no (side branch)"], ["time", new Date(b.timestamp).toISOString()],
        ["bits", b.bits], ["nonce", b.nonce], ["merkle root", b.merkle_root], ["size", b.size + " bytes"],
      ]), txs);
    } else if (kind === "tx") {
      const r = await GC.get("/tx/" + id);
      const t = r.tx;
      setText("detail-title", `${t.kind} ${GC.short(t.txid)}`);
      const where = r.status.confirmed
        ? GC.el("span", {}, "in block ", blockLink(r.status.block_hash), ` at height ${r.status.block_height}`)
        : "pending in the mempool";
      body.replaceChildren(dl([
        ["txid", t.txid], ["status", where], ["from", t.from || "(coinbase)"], ["to", t.to],
        ["amount", t.amount], ["fee", t.fee], ["nonce", t.nonce ?? "–"], ["hex", t.hex],
      ]));
    } else {
      const a = await GC.get("/address/" + id);
      setText("detail-title", "address " + GC.short(a.address, 12));
      body.replaceChildren(dl([
        ["address", a.address], ["balance", a.balance], ["nonce", a.nonce], ["next nonce", a.next_nonce],
        ["pending spend", a.pending_spend], ["pending transfers", a.pending.length],
      ]));
    }
  } catch (e) {
    setText("detail-title", kind);
    body.replaceChildren(GC.el("div", { class: "err", text: e.message }));
  }
}

$("detail-close").addEventListener("click", (e) => { e.preventDefault(); location.hash = ""; });
window.addEventListener("hashchange", showDetail);

$("lookup").addEventListener("submit", async (e) => {
  e.preventDefault();
  const q = $("lookup-q").value.trim();
  GC.show("lookup-out", "");
  try {
    if (/^\d+$/.test(q)) {
      const hash = await GC.get("/block-height/" + q);
      location.hash = "#/block/" + hash;
    } else if (/^gct?1/i.test(q)) {
      await GC.get("/address/" + q); // a mistyped address: the node's one-line reason
      location.hash = "#/address/" + q;
    } else if (/^[0-9a-fA-F]{64}$/.test(q)) {
      for (const kind of ["block", "tx", "address"]) {
        try { await GC.get(`/${kind}/${q}`); location.hash = `#/${kind}/${q}`; return; } catch (_) { /* next */ }
      }
      GC.show("lookup-out", "no block, transaction or address " + q, "err");
    } else {
      GC.show("lookup-out", "type a height, an address (gc1…), or 64 hex digits (block hash, txid or address)", "err");
    }
  } catch (err) { GC.showError("lookup-out", err); }
});

$("send").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const r = await GC.action("/wallet/send", {
      to: $("send-to").value.trim(), amount: Number($("send-amount").value), fee: Number($("send-fee").value),
    });
    GC.show("send-out", "sent " + r.txid, "ok");
  } catch (err) { GC.showError("send-out", err); }
});

async function mine(body, label) {
  GC.show("mine-out", label + "…");
  try {
    const r = await GC.action("/mine", body);
    GC.show("mine-out", r.blocks ? "mined #" + r.blocks.map((b) => b.height).join(", #") : "mining " + (r.mining ? "on" : "off"), "ok");
    refreshStatus();
  } catch (err) { GC.showError("mine-out", err); }
}
$("mine-1").addEventListener("click", () => mine({ n: 1 }, "mining one block"));
$("mine-on").addEventListener("click", () => mine({ on: true }, "starting"));
$("mine-off").addEventListener("click", () => mine({ on: false }, "stopping"));

$("dial").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const r = await GC.action("/node/dial", { addr: $("dial-addr").value.trim() });
    GC.show("dial-out", "connected to " + r.peer_id, "ok");
  } catch (err) { GC.showError("dial-out", err); }
});

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  GC.setToken($("token").value);
  $("token").value = "";
  GC.show("token-out", "token saved for this browser", "ok");
});
GC.show("token-out", GC.token() ? "token loaded" : "no token yet: open the URL the node printed, or paste the .cookie file's content", GC.token() ? "ok" : "");

// Live updates. A reconnect (after the node restarts, or a lag) re-reads everything.
function refreshAll() {
  return Promise.all([refreshStatus(), refreshBlocks(), refreshMempool(), refreshPeers(), refreshTree()])
    .catch((e) => console.warn("refresh failed:", e.message));
}

let pendingStatus = null;
function soon(fn) {
  if (pendingStatus) return;
  pendingStatus = setTimeout(() => { pendingStatus = null; fn().catch((e) => console.warn(e.message)); }, 150);
}

GC.events({
  hello: () => { BlockTree.reset(); refreshAll(); },
  block: (b, seq) => { BlockTree.onEvent("block", b, seq); drawTree(); },
  tip: (t, seq) => {
    tipEvents++;
    setText("height", t.height);
    setText("tip", GC.short(t.hash, 16));
    $("tip").title = t.hash;
    BlockTree.onEvent("tip", t, seq);
    drawTree();
    if (t.reorg_depth > 0) {
      $("reorgs").prepend(GC.el("li", {
        text: `${new Date().toLocaleTimeString()}: reorganisation of depth ${t.reorg_depth}: ` +
          `${t.disconnected.map((h) => h.slice(0, 8)).join(", ")} left the best chain for ${t.connected.map((h) => h.slice(0, 8)).join(", ")}`,
      }));
    }
    refreshBlocks(t.hash).catch(() => {});
    soon(async () => { await refreshStatus(); await refreshMempool(); });
  },
  tx: () => soon(async () => { await refreshStatus(); await refreshMempool(); }),
  peer: () => soon(async () => { await refreshStatus(); await refreshPeers(); }),
  lagged: () => refreshAll(),
}, (live) => {
  const p = $("live");
  p.textContent = live ? "live" : "offline";
  p.className = "pill " + (live ? "on" : "off");
});

// Mining on/off and ping times change without an event: a slow poll keeps them fresh.
setInterval(() => { refreshStatus().catch(() => {}); refreshPeers().catch(() => {}); }, 5000);
refreshAll();
showDetail();
