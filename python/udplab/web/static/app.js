// udplab view: the live ladder of datagrams. Events come from /events?batch (Server-Sent
// Events, each run of events one JSON array: see udplab/web/events.py); everything is drawn
// here, as SVG, with text set through textContent only (previews are never markup).
"use strict";
(() => {
  const SVGNS = "http://www.w3.org/2000/svg";
  const ROW = 26; // pixels per event row
  const TOP = 12;
  const MARGIN = 130; // room left and right of the outer lifelines
  const SPACING = 170; // least room between two lifelines
  // While events stream in, the ladder is redrawn at most every STREAM_REDRAW ms, and the
  // faster they come the less often: every event's arrival time in ms, times REDRAW_PER_EVENT,
  // up to FLOOD_REDRAW. Nobody reads rows that scroll by faster, and painting is most of what
  // the page costs the machine, which it shares with the chat. What a person does (a click,
  // a scroll) is drawn at the next frame.
  const STREAM_REDRAW = 60;
  const REDRAW_PER_EVENT = 5;
  const FLOOD_REDRAW = 1000;
  // Older events are let go (the page says so), LET_GO at a time: each cut renumbers the rows,
  // a pass over every event kept, which one cut per new event would make for every event.
  const MAX_EVENTS = 50000;
  const LET_GO = 5000;
  const KINDS = ["message", "broadcast", "heartbeat", "quit", "join", "expire", "datagram"];
  const ENDS = ["lost", "queue_dropped", "refused", "socket_errors", "flushed", "send_errors"];
  const ROLE_ORDER = { client: 0, link: 1, server: 2 };

  const $ = (id) => document.getElementById(id);
  const svg = $("ladder");
  const scroller = $("scroll");

  let strings = { en: {}, zh: {} };
  let lang = (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
  try {
    const saved = localStorage.getItem("udplab-view-lang");
    if (saved === "zh" || saved === "en") lang = saved;
  } catch (e) { /* storage may be off: follow the browser */ }
  let ladderCss = "";

  const st = {
    lifelines: [], // {name, role, addr}, in arrival order
    byName: new Map(),
    events: [], // every event kept, in the order drawn
    let_go: 0, // events dropped from the front (MAX_EVENTS)
    shown: 0, // events[0..shown) are eligible to be drawn
    paused: false,
    follow: true,
    replay: false,
    ended: false,
    connected: false,
    speed: 1,
    replayClock: 0, // seconds into the replay
    hiddenKinds: new Set(),
    hiddenClients: new Set(),
    visible: [], // indices into events of the rows drawn, after the filters
    visibleDone: [], // running maximum of each visible row's done time
    counts: new Map(),
    dropped: 0,
    missed: 0,
    dirty: true,
    urgent: false, // redraw at the next frame: a person did something
  };
  // What tests and benchmarks read.
  // lag: seconds from each event's time to its arrival here (the first 100 000 events);
  // longest: the longest task that held the page up, in ms (tasks over 50 ms are reported).
  const perf = { frames: 0, longest: 0, lastRender: 0, longestRender: 0, renders: 0, lag: [] };
  window.udplabView = { st, perf };

  const t = (key, vars) => {
    let s = (strings[lang] && strings[lang][key]) || strings.en[key] || key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replace("{" + k + "}", v);
    return s;
  };
  const done = (e) => e.t + (e.delay || 0);
  const fateParts = (e) => (e.fate || "").split("+");
  const ended = (e) => ENDS.includes(fateParts(e)[0]);

  // ----- state changes -------------------------------------------------------------------

  function lifeline(line) {
    if (st.byName.has(line.name)) return;
    st.byName.set(line.name, line);
    st.lifelines.push(line);
    st.counts.set(line.name, {});
    if (line.role === "client") addClientFilter(line.name);
  }

  function ensure(name) {
    if (!st.byName.has(name)) lifeline({ name, role: "client", addr: name });
  }

  function bump(name, key, sign) {
    ensure(name);
    const c = st.counts.get(name);
    c[key] = (c[key] || 0) + sign;
  }

  function count(e, sign) {
    if (e.kind === "join" || e.kind === "expire") {
      bump(e.dst, e.kind === "join" ? "joins" : "expiries", sign);
      return;
    }
    const parts = fateParts(e);
    if (!parts.includes("duplicated")) bump(e.src, "sent", sign);
    if (!ended(e) && !parts[0].startsWith("dropped")) bump(e.dst, "received", sign);
    if (e.via) {
      if (!ended(e)) bump(e.via, "crossed", sign);
      for (const p of parts) {
        if (p !== "forwarded") bump(e.via, p, sign);
      }
    }
  }

  function passes(e) {
    if (st.hiddenKinds.has(e.kind)) return false;
    return !(st.hiddenClients.has(e.src) || st.hiddenClients.has(e.dst));
  }

  function pushVisible(i) {
    const e = st.events[i];
    if (!passes(e)) return;
    const prev = st.visibleDone.length ? st.visibleDone[st.visibleDone.length - 1] : -Infinity;
    st.visible.push(i);
    st.visibleDone.push(Math.max(prev, done(e)));
  }

  function rebuildVisible() {
    st.visible = [];
    st.visibleDone = [];
    for (let i = 0; i < st.shown; i++) pushVisible(i);
    poke();
  }

  function show(n) {
    n = Math.max(0, Math.min(n, st.events.length));
    if (n > st.shown) {
      for (let i = st.shown; i < n; i++) {
        count(st.events[i], 1);
        pushVisible(i);
      }
      st.shown = n;
    } else if (n < st.shown) {
      for (let i = n; i < st.shown; i++) count(st.events[i], -1);
      st.shown = n;
      while (st.visible.length && st.visible[st.visible.length - 1] >= n) {
        st.visible.pop();
        st.visibleDone.pop();
      }
    }
    touch();
  }

  function addEvent(e) {
    if (perf.lag.length < 100000) perf.lag.push(Date.now() / 1000 - done(e));
    ensure(e.src);
    ensure(e.dst);
    st.events.push(e);
    if (!st.paused && !st.replay) show(st.events.length);
    if (st.events.length >= MAX_EVENTS + LET_GO) {
      const cut = st.events.length - MAX_EVENTS;
      for (let i = 0; i < Math.min(cut, st.shown); i++) count(st.events[i], -1);
      st.events.splice(0, cut);
      st.let_go += cut;
      st.shown = Math.max(0, st.shown - cut);
      rebuildVisible();
    }
    touch();
  }

  // ----- replay clock ------------------------------------------------------------------

  let lastTick = null;
  function tickReplay(now) {
    if (!st.replay || st.paused || !st.events.length) {
      lastTick = now;
      return;
    }
    const dt = lastTick === null ? 0 : (now - lastTick) / 1000;
    lastTick = now;
    const t0 = done(st.events[0]);
    st.replayClock += dt * st.speed;
    let n = st.shown;
    while (n < st.events.length && done(st.events[n]) - t0 <= st.replayClock) n++;
    if (n !== st.shown) show(n);
  }

  // ----- drawing ---------------------------------------------------------------------------

  function el(name, attrs, parent, text) {
    const node = document.createElementNS(SVGNS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function ordered() {
    return st.lifelines
      .map((line, i) => [line, i])
      .sort((a, b) => (ROLE_ORDER[a[0].role] - ROLE_ORDER[b[0].role]) || (a[1] - b[1]))
      .map(([line]) => line);
  }

  function layout(width) {
    const lines = ordered();
    const n = lines.length;
    const inner = Math.max(width - 2 * MARGIN, (n - 1) * SPACING);
    const xs = new Map();
    lines.forEach((line, i) => xs.set(line.name, n === 1 ? MARGIN + inner / 2 : MARGIN + (i * inner) / (n - 1)));
    return { lines, xs, width: inner + 2 * MARGIN };
  }

  const rowY = (r) => TOP + r * ROW + ROW / 2;

  // The first visible row at or after time `at`, among rows up to `r`: where a datagram that
  // reached the link at `at` starts, so that a delayed copy slants down to its own row.
  function startRow(at, r) {
    let lo = 0;
    let hi = r;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (st.visibleDone[mid] >= at) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  // Where a datagram that reached the link at `at` starts: between the rows done before and
  // after that moment (on its own row when nothing came between), so that a delayed copy
  // slants down to its own row without lying on another event's line.
  function startY(at, r, yOf) {
    const k = startRow(at, r);
    if (k === r) return yOf(r);
    if (k === 0) return yOf(0) - ROW / 2;
    const before = st.visibleDone[k - 1];
    const after = st.visibleDone[k];
    const frac = after > before ? (at - before) / (after - before) : 0.5;
    return yOf(k - 1) + ROW * Math.min(0.75, Math.max(0.25, frac));
  }

  function arrowHead(g, x1, y1, x2, y2) {
    const a = Math.atan2(y2 - y1, x2 - x1);
    const s = 8;
    const p = (da) => `${(x2 - s * Math.cos(a + da)).toFixed(1)},${(y2 - s * Math.sin(a + da)).toFixed(1)}`;
    el("path", { class: "tip", d: `M${x2.toFixed(1)},${y2.toFixed(1)} L${p(0.42)} L${p(-0.42)} Z` }, g);
  }

  function label(e) {
    const kind = t(e.kind);
    if (e.kind === "heartbeat" || !e.preview) return kind;
    return `${kind} “${e.preview}”`;
  }

  function fateLabel(e) {
    const parts = fateParts(e);
    const out = [];
    if (parts[0].startsWith("dropped")) out.push(t("dropped_by_server") + " (" + parts[0].slice(8) + ")");
    else if (ENDS.includes(parts[0])) out.push(t(parts[0]));
    if (parts.includes("duplicated")) out.push("×2 " + t("duplicated"));
    if (parts.includes("reordered")) out.push("⇄ " + t("reordered"));
    if (parts.includes("corrupted")) out.push("↯ " + t("corrupted"));
    if (parts.includes("delayed") && e.delay !== undefined) out.push(`${t("delayed")} ${Math.round(e.delay * 1000)} ms`);
    return out.join(" · ");
  }

  function drawRow(parent, r, xs, yOf) {
    const e = st.events[st.visible[r]];
    const parts = fateParts(e);
    const classes = ["ev", "kind-" + e.kind].concat(parts.filter((p) => !p.includes(":")));
    const g = el("g", { class: classes.join(" "), "data-id": String(e.id) }, parent);
    const y = yOf(r);
    const xs1 = xs.get(e.src);
    const xd = xs.get(e.dst);
    if (e.kind === "join" || e.kind === "expire") {
      el("line", { class: "connector", x1: xs1, y1: y, x2: xd, y2: y }, g);
      el("circle", { class: "mark " + e.kind, cx: xd, cy: y, r: 5.5 }, g);
      const left = xd > xs1;
      el("text", { class: "mark-label", x: xd + (left ? -10 : 10), y: y + 4, "text-anchor": left ? "end" : "start" }, g,
        `${t(e.kind)} ${e.src}`);
      return;
    }
    const fate = fateLabel(e);
    if (e.via && xs.has(e.via)) {
      const xl = xs.get(e.via);
      const y0 = startY(e.t, r, yOf);
      el("line", { class: "arrow in", x1: xs1, y1: y0, x2: xl, y2: y0 }, g);
      // A duplicate's second copy shares the first one's way in, label and all.
      if (!parts.includes("duplicated")) place(g, (xs1 + xl) / 2, y0 - 5, label(e));
      if (ended(e)) {
        el("text", { class: "x", x: xl, y: y0 + 6, "text-anchor": "middle" }, g, "✕");
      } else {
        el("line", { class: "arrow out", x1: xl, y1: y0, x2: xd, y2: y }, g);
        arrowHead(g, xl, y0, xd, y);
      }
      if (fate) {
        // On its own row: beside the link when it left at once, else beside the end of the
        // slanted arrow (rows where arrows start are shared, rows where they end are not).
        const right = xd >= xl;
        const [x, anchor] = y0 === y || ended(e)
          ? [xl + (right ? 8 : -8), right ? "start" : "end"]
          : [xd + (right ? -12 : 12), right ? "end" : "start"];
        el("text", { class: "fate", x, y: y - 5, "text-anchor": anchor }, g, fate);
      }
      return;
    }
    el("line", { class: "arrow", x1: xs1, y1: y, x2: xd, y2: y }, g);
    place(g, (xs1 + xd) / 2, y - 5, label(e));
    if (parts[0].startsWith("dropped") || ENDS.includes(parts[0])) {
      el("text", { class: "x", x: xd, y: y + 6, "text-anchor": "middle" }, g, "✕");
    } else {
      arrowHead(g, xs1, y, xd, y);
      if (e.kind === "quit" && st.byName.get(e.dst) && st.byName.get(e.dst).role === "server") {
        el("circle", { class: "mark leave", cx: xd, cy: y, r: 4.5 }, g);
      }
    }
    if (fate) el("text", { class: "fate", x: xd + (xd > xs1 ? -8 : 8), y: y - 5, "text-anchor": xd > xs1 ? "end" : "start" }, g, fate);
  }

  // Labels drawn in this pass, by place: copies of one broadcast start together and would
  // write the same words over each other.
  let placed = new Map();
  function place(g, x, y, text) {
    const key = `${Math.round(x)}:${Math.round(y / 6)}`;
    const there = placed.get(key);
    if (there === text) return;
    if (there !== undefined) y -= 11;
    placed.set(key, text);
    el("text", { class: "label", x, y, "text-anchor": "middle" }, g, text);
  }

  function drawRows(parent, from, to, xs, yOf) {
    placed = new Map();
    for (let r = from; r < to; r++) {
      if (r % 2 === 1) continue;
      el("rect", { class: "band", x: 0, y: yOf(r) - ROW / 2, width: "100%", height: ROW }, parent);
    }
    for (let r = from; r < to; r++) drawRow(parent, r, xs, yOf);
  }

  function countsText(line) {
    const c = st.counts.get(line.name) || {};
    const n = (k) => c[k] || 0;
    if (line.role === "link") {
      return [`${t("forwarded")} ${n("crossed")}`, `✕ ${n("lost")}`, `×2 ${n("duplicated")}`,
        `⇄ ${n("reordered")}`, `↯ ${n("corrupted")}`, `${t("delayed")} ${n("delayed")}`].join(" · ");
    }
    if (line.role === "server") {
      return `${t("received")} ${n("received")} · ${t("sent")} ${n("sent")} · ${t("joins")} ${n("joins")} · ${t("expiries")} ${n("expiries")}`;
    }
    return `${t("sent")} ${n("sent")} · ${t("received")} ${n("received")}`;
  }

  function renderHeads(lay) {
    const heads = $("heads");
    heads.replaceChildren();
    const inner = document.createElement("div");
    inner.style.position = "absolute";
    inner.style.left = -scroller.scrollLeft + "px";
    inner.style.top = "0";
    inner.style.width = lay.width + "px";
    inner.style.height = "100%";
    for (const line of lay.lines) {
      const d = document.createElement("div");
      d.className = "head " + line.role;
      d.style.left = lay.xs.get(line.name) + "px";
      d.title = line.addr;
      const b = document.createElement("b");
      b.textContent = line.role === "client" ? line.name : `${t(line.role)}${line.name === line.role ? "" : " " + line.name}`;
      const counts = document.createElement("span");
      counts.className = "counts";
      counts.textContent = countsText(line);
      const addr = document.createElement("span");
      addr.className = "counts";
      addr.textContent = line.addr;
      d.append(b, addr, document.createElement("br"), counts);
      inner.appendChild(d);
    }
    heads.appendChild(inner);
  }

  function renderStatus() {
    const state = $("state");
    const mode = st.ended ? "ended" : st.paused ? "paused" : st.replay ? "replay" : st.connected ? "live" : "connecting";
    state.textContent = t(mode);
    state.className = "state " + (st.ended ? "ended" : st.paused ? "paused" : "");
    const status = $("status");
    status.replaceChildren();
    status.append(t("shown", { shown: st.shown + st.let_go, total: st.events.length + st.let_go }));
    const lost = st.dropped + st.missed;
    if (lost) {
      const w = document.createElement("span");
      w.className = "warn";
      w.textContent = " · " + t("dropped", { n: lost });
      status.append(w);
    }
    $("pause").textContent = st.paused ? t("resume") : t("pause");
    $("pause").setAttribute("aria-pressed", String(st.paused));
    $("speed-box").hidden = !st.replay;
    $("empty").hidden = st.events.length > 0;
  }

  function render() {
    const started = performance.now();
    const lay = layout(scroller.clientWidth - 1);
    const rows = st.visible.length;
    const height = TOP * 2 + rows * ROW + 40;
    svg.setAttribute("width", lay.width);
    svg.setAttribute("height", Math.max(height, scroller.clientHeight - 4));
    if (st.follow && !st.paused) {
      scroller.scrollTop = scroller.scrollHeight;
      ownScroll = scroller.scrollTop;
    }
    const first = Math.max(0, Math.floor((scroller.scrollTop - TOP) / ROW) - 2);
    const last = Math.min(rows, first + Math.ceil(scroller.clientHeight / ROW) + 4);
    svg.replaceChildren();
    // Rows above the window whose slanted arrows reach into it are drawn as well.
    let from = first;
    for (let r = first; r < last; r++) {
      const e = st.events[st.visible[r]];
      if (e.via) from = Math.min(from, startRow(e.t, r));
    }
    // Lifelines only where rows are drawn: a dashed line as tall as 10,000 rows costs the
    // browser a dash for every 9 pixels of it at each redraw.
    const lifelines = el("g", { class: "lifelines" }, svg);
    const top = Math.max(0, rowY(from) - ROW);
    const bottom = Math.max(rowY(last) + ROW, scroller.scrollTop + scroller.clientHeight);
    for (const line of lay.lines) {
      const x = lay.xs.get(line.name);
      el("line", { class: "lifeline " + line.role, x1: x, y1: top, x2: x, y2: bottom }, lifelines);
    }
    drawRows(el("g", { class: "rows" }, svg), from, last, lay.xs, rowY);
    renderHeads(lay);
    renderStatus();
    st.window = [first, last];
    perf.renders++;
    perf.lastRender = performance.now() - started;
    perf.longestRender = Math.max(perf.longestRender, perf.lastRender);
  }

  // Frames are asked for only when there is something to draw (a browser that animates an
  // idle page still burns CPU the chat could use): at once after something a person did, on
  // every frame of a replay, else once the wait after the last redraw is over (a timer, not a
  // frame per vsync, runs out the wait), at least STREAM_REDRAW ms while events stream in.
  let lastDrawn = -Infinity;
  let ownScroll = -1; // where render() last scrolled to itself
  let drawnCount = 0;
  let framed = false; // a frame is asked for
  let timer = null; // a redraw waits for its time

  function schedule() {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    if (!framed) {
      framed = true;
      requestAnimationFrame(frame);
    }
  }

  function redrawWait() {
    const since = st.events.length - drawnCount;
    return Math.min(FLOOD_REDRAW, Math.max(STREAM_REDRAW, since * REDRAW_PER_EVENT));
  }

  function touch() {
    st.dirty = true;
    if (framed || timer !== null) return;
    const left = lastDrawn + redrawWait() - performance.now();
    if (left <= 0) {
      schedule();
    } else {
      // When the timer runs out, the wait is weighed again: more events may have come.
      timer = setTimeout(() => {
        timer = null;
        touch();
      }, left);
    }
  }

  function poke() {
    st.urgent = true;
    st.dirty = true;
    schedule();
  }

  function replaying() {
    return st.replay && !st.paused && st.shown < st.events.length;
  }

  function frame(now) {
    framed = false;
    perf.frames++;
    tickReplay(now);
    if (st.urgent || (st.dirty && now - lastDrawn >= redrawWait())) {
      st.dirty = st.urgent = false;
      lastDrawn = now;
      drawnCount = st.events.length;
      render();
    }
    if (replaying()) schedule();
    else if (st.dirty) touch();
  }

  // ----- Save SVG ----------------------------------------------------------------------

  function saveSvg() {
    const lay = layout(scroller.clientWidth);
    const [first, last] = st.window || [0, 0];
    const headH = 50;
    const rows = Math.max(0, last - first);
    const out = document.createElementNS(SVGNS, "svg");
    out.setAttribute("xmlns", SVGNS);
    out.setAttribute("width", lay.width);
    out.setAttribute("height", headH + rows * ROW + 2 * TOP);
    el("style", {}, out, ladderCss);
    el("rect", { x: 0, y: 0, width: "100%", height: "100%", fill: "#ffffff" }, out);
    for (const line of lay.lines) {
      const x = lay.xs.get(line.name);
      el("line", { class: "lifeline " + line.role, x1: x, y1: headH - 8, x2: x, y2: headH + rows * ROW + 2 * TOP }, out);
      el("text", { class: "name", x, y: 18, "text-anchor": "middle" }, out, line.role === "client" ? line.name : t(line.role));
      el("text", { class: "counts", x, y: 34, "text-anchor": "middle" }, out, countsText(line));
    }
    const rowsG = el("g", {}, out);
    const yOf = (r) => headH + TOP + (r - first) * ROW + ROW / 2;
    drawRows(rowsG, first, last, lay.xs, yOf);
    // Rows above the window that an arrow starts from are outside the picture: leave them.
    const blob = new Blob([new XMLSerializer().serializeToString(out)], { type: "image/svg+xml" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "udplab-ladder.svg";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    window.udplabView.lastSvg = out.outerHTML;
  }

  // ----- controls ----------------------------------------------------------------------

  function setPaused(paused) {
    st.paused = paused;
    if (!paused && !st.replay) show(st.events.length);
    lastTick = null;
    poke();
  }

  function step(by) {
    if (!st.paused) setPaused(true);
    show(st.shown + by);
    if (st.replay && st.shown > 0) st.replayClock = done(st.events[st.shown - 1]) - done(st.events[0]);
    st.follow = false;
    $("follow").checked = false;
    scrollToShown();
  }

  function scrollToShown() {
    const rows = st.visible.length;
    const target = TOP + rows * ROW - scroller.clientHeight / 2;
    scroller.scrollTop = Math.max(0, target);
    poke();
  }

  function addCheckbox(container, value, text, hidden) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = true;
    box.value = value;
    box.addEventListener("change", () => {
      if (box.checked) hidden.delete(value);
      else hidden.add(value);
      rebuildVisible();
    });
    const span = document.createElement("span");
    span.textContent = text;
    span.dataset.key = value;
    label.append(box, " ", span);
    container.appendChild(label);
  }

  function addClientFilter(name) {
    addCheckbox($("clients"), name, name, st.hiddenClients);
  }

  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const span of $("kinds").querySelectorAll("span[data-key]")) span.textContent = t(span.dataset.key);
    document.title = t("title");
    poke();
  }

  function wire() {
    $("pause").addEventListener("click", () => setPaused(!st.paused));
    $("back").addEventListener("click", () => step(-1));
    $("forward").addEventListener("click", () => step(1));
    $("follow").addEventListener("change", (ev) => {
      st.follow = ev.target.checked;
      poke();
    });
    $("speed").addEventListener("change", (ev) => { st.speed = Number(ev.target.value); });
    $("save").addEventListener("click", saveSvg);
    $("lang").addEventListener("click", () => {
      lang = lang === "zh" ? "en" : "zh";
      try { localStorage.setItem("udplab-view-lang", lang); } catch (e) { /* no storage */ }
      applyLanguage();
    });
    scroller.addEventListener("wheel", () => {
      if (st.follow) {
        st.follow = false;
        $("follow").checked = false;
      }
    }, { passive: true });
    // The page's own scrolling (following live) fires this too: redrawing for it would scroll
    // again, a redraw every frame while events stream in.
    scroller.addEventListener("scroll", () => {
      if (scroller.scrollTop !== ownScroll) poke();
    }, { passive: true });
    window.addEventListener("resize", () => { poke(); });
    for (const kind of KINDS) addCheckbox($("kinds"), kind, t(kind), st.hiddenKinds);
  }

  function connect() {
    // ?batch: each run of events comes as one message, a JSON array (one parse and one
    // dispatch per run, not per event).
    const source = new EventSource("events?batch");
    source.onopen = () => { st.connected = true; touch(); };
    source.addEventListener("events", (m) => {
      for (const e of JSON.parse(m.data)) addEvent(e);
    });
    source.addEventListener("lifeline", (m) => { lifeline(JSON.parse(m.data)); touch(); });
    source.addEventListener("status", (m) => {
      const s = JSON.parse(m.data);
      if (s.replay && !st.replay) {
        st.replay = true;
        st.follow = true;
      }
      st.dropped = s.dropped || 0;
      touch();
    });
    source.addEventListener("missed", (m) => { st.missed = JSON.parse(m.data).missed; touch(); });
    source.addEventListener("end", () => {
      st.ended = true;
      poke();
      source.close();
    });
    source.onerror = () => { st.connected = false; touch(); };
  }

  async function main() {
    const [s, css] = await Promise.all([
      fetch("strings.json").then((r) => r.json()),
      fetch("ladder.css").then((r) => r.text()),
    ]);
    strings = s;
    ladderCss = css;
    wire();
    applyLanguage();
    connect();
    // The longest task that held up the page (ms): what a person feels as a frozen page.
    if (window.PerformanceObserver && PerformanceObserver.supportedEntryTypes.includes("longtask")) {
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) perf.longest = Math.max(perf.longest, entry.duration);
      }).observe({ type: "longtask" });
    }
    schedule();
  }

  main();
})();
