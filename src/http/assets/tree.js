// The live block tree: every recent block this node holds, best chain and side branches, laid
// out by height (left to right) and branch (top to bottom), redrawn as blocks arrive and as the
// best chain changes. Each block shows when it reached this node and from which peer.
//
// What is drawn is a snapshot of /tree plus the block and tip events numbered after it (each
// event's SSE id; the snapshot's `seq` is the last one it reflects), applied in order. A snapshot
// read while events keep coming may answer before or after those events reach the page: the
// events that arrived meanwhile are kept and replayed over it, those it already reflects are
// skipped, and an answer older than the snapshot drawn is dropped.
"use strict";

const BlockTree = (() => {
  const W = 136, H = 46, GAPX = 26, GAPY = 18, PAD = 24, HEIGHTS = 30;
  // Events kept while a snapshot is awaited; beyond this the answer is dropped (the drawing,
  // kept up to date by the events themselves, stays right).
  const MAX_KEPT = 10000;
  const blocks = new Map(); // hash -> {hash, parent, height, arrived_ms, origin, source, best, gone}
  let tip = null;
  let base = 0; // the number of the last event the snapshot drawn reflects
  let epoch = 0; // bumped by reset(): answers to requests sent before it are dropped
  let waiting = 0; // snapshot requests in flight
  let kept = []; // events that arrived while one is in flight, in order
  let overflow = false;

  function applyBlock(b) {
    const old = blocks.get(b.hash);
    blocks.set(b.hash, Object.assign({ best: false, gone: false }, old || {}, b,
      { best: old ? old.best : !!b.in_best_chain }));
  }

  // A tip event: blocks that left the best chain are drawn as such; those that joined it too.
  function applyTip(t) {
    for (const h of t.disconnected) { const b = blocks.get(h); if (b) { b.best = false; b.gone = true; } }
    for (const h of t.connected) { const b = blocks.get(h); if (b) { b.best = true; b.gone = false; } }
    tip = t.hash;
  }

  function apply(e) {
    if (e.kind === "tip") applyTip(e.data); else applyBlock(e.data);
  }

  // A `block` or `tip` event, with its number.
  function onEvent(kind, data, seq) {
    if (seq <= base) return; // the snapshot drawn reflects it already
    const e = { kind, data, seq };
    if (waiting) {
      if (kept.length < MAX_KEPT) kept.push(e); else overflow = true;
    }
    apply(e);
  }

  // Draws a /tree answer and replays over it the events it does not reflect. Blocks that left
  // the best chain in this page's life stay marked so while they are off it.
  function load(tree) {
    if (tree.seq < base) return;
    const gone = new Set([...blocks.values()].filter((b) => b.gone).map((b) => b.hash));
    blocks.clear();
    for (const b of tree.blocks) {
      blocks.set(b.hash, Object.assign({}, b, { best: b.in_best_chain, gone: !b.in_best_chain && gone.has(b.hash) }));
    }
    tip = tree.tip;
    base = tree.seq;
    for (const e of kept) if (e.seq > base) apply(e);
  }

  // Reads a snapshot with `get` (a promise of the /tree answer) and draws it.
  async function refresh(get) {
    const asked = epoch;
    waiting++;
    try {
      const tree = await get();
      if (asked === epoch && !overflow) load(tree);
    } finally {
      if (--waiting === 0) { kept = []; overflow = false; }
    }
  }

  // A new event stream (the first, or after a reconnection: the node may have restarted and
  // numbers its events from 1 again). Call refresh() after it.
  function reset() {
    epoch++;
    base = 0;
    kept = [];
    overflow = false;
  }

  function layout() {
    const all = [...blocks.values()];
    if (!all.length) return { items: [], minH: 0, maxH: 0, lanes: 1 };
    const maxH = Math.max(...all.map((b) => b.height));
    const minH = Math.max(0, maxH - HEIGHTS + 1);
    const shown = all.filter((b) => b.height >= minH).sort((a, b) => a.height - b.height || (b.best - a.best));
    const lane = new Map();
    const childLanes = new Map(); // parent hash -> lanes its children took
    let lanes = 1;
    for (const b of shown) {
      let l;
      if (b.best) l = 0;
      else {
        const p = lane.get(b.parent);
        const taken = childLanes.get(b.parent) || [];
        if (p !== undefined && p !== 0 && !taken.includes(p)) l = p;
        else l = lanes++;
      }
      lane.set(b.hash, l);
      childLanes.set(b.parent, (childLanes.get(b.parent) || []).concat([l]));
    }
    return { items: shown.map((b) => ({ b, lane: lane.get(b.hash) })), minH, maxH, lanes, lane };
  }

  function svgEl(tag, attrs, text) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function originText(b) {
    if (b.source === "peer") return "from …" + b.origin.slice(-6);
    if (b.source === "local") return "mined or sent here";
    return "from disk";
  }

  function draw(svg, onClick) {
    const { items, minH, maxH, lanes, lane } = layout();
    const x = (h) => PAD + (h - minH) * (W + GAPX);
    const y = (l) => PAD + 14 + l * (H + GAPY);
    const width = x(maxH) + W + PAD, height = y(lanes - 1) + H + PAD;
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren();
    // Text never spills out of a box, whatever the fonts.
    const clip = svgEl("clipPath", { id: "blk-clip" });
    clip.append(svgEl("rect", { width: W - 4, height: H }));
    const defs = svgEl("defs", {});
    defs.append(clip);
    svg.append(defs);
    for (let h = minH; h <= maxH; h++) svg.append(svgEl("text", { class: "h", x: x(h) + 2, y: PAD }, "#" + h));
    for (const { b, lane: l } of items) {
      const p = blocks.get(b.parent);
      if (p && lane.has(p.hash)) {
        const pl = lane.get(p.hash);
        svg.append(svgEl("line", {
          class: b.best && p.best ? "best" : "",
          x1: x(p.height) + W, y1: y(pl) + H / 2, x2: x(b.height), y2: y(l) + H / 2,
        }));
      }
    }
    for (const { b, lane: l } of items) {
      const cls = ["blk", b.best ? "best" : "", b.gone ? "gone" : "", b.hash === tip ? "tip" : ""].join(" ");
      const g = svgEl("g", { class: cls, "data-hash": b.hash, transform: `translate(${x(b.height)},${y(l)})` });
      const title = `block ${b.hash}\nheight ${b.height}\n${b.best ? "best chain" : b.gone ? "left the best chain (reorganisation)" : "side branch"}\n` +
        (b.arrived_ms ? `arrived ${new Date(b.arrived_ms).toISOString()}\n` : "") +
        (b.origin ? `from peer ${b.origin}` : b.source === "local" ? "mined or submitted here" : "loaded from disk");
      g.append(svgEl("title", {}, title));
      g.append(svgEl("rect", { width: W, height: H }));
      const t = svgEl("g", { "clip-path": "url(#blk-clip)" });
      t.append(svgEl("text", { x: 7, y: 15 }, b.hash.slice(0, 12)));
      t.append(svgEl("text", { class: "sub", x: 7, y: 28 }, b.arrived_ms ? GC.time(b.arrived_ms) : "–"));
      t.append(svgEl("text", { class: "sub", x: 7, y: 40 }, originText(b)));
      g.append(t);
      g.addEventListener("click", () => onClick(b.hash));
      svg.append(g);
    }
    const wrap = svg.parentElement;
    if (wrap) wrap.scrollLeft = wrap.scrollWidth;
  }

  return { onEvent, refresh, reset, draw, blocks };
})();
