// bilge report: the treemap (squarified; Bruls, Huizing, van Wijk 2000), drawn as inline SVG.
// Reads the JSON in #bilge-data; no network, no library. Every number shown comes from that data.
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("bilge-data").textContent);
  var box = document.getElementById("treemap");
  var crumbs = document.getElementById("crumbs");
  var detail = document.getElementById("treemap-detail");
  var palette = data.palette;
  var stack = [data.tree];
  var HEAD = 17;

  function human(n) {
    var units = ["B", "kB", "MB", "GB", "TB"], i = 0;
    var neg = n < 0; n = Math.abs(n);
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (neg ? "-" : "") + (i === 0 ? String(Math.round(n)) + " B" : n.toFixed(1) + " " + units[i]);
  }
  function total(n) { return n.v + (n.x || 0); }
  function colour(layer) { return layer == null ? "#999999" : palette[layer % palette.length]; }
  function mainLayer(pairs) { return pairs && pairs.length ? pairs[0][0] : null; }
  function pathOf(parentPath, n) {
    if (n.k === "r") return parentPath;
    return parentPath === "/" ? "/" + n.n : parentPath + "/" + n.n;
  }
  function label(n) {
    if (n.k === "r") return "(" + n.e.toLocaleString("en") + " smaller entries)";
    return n.n === "/" ? "/" : n.n;
  }
  function layersText(pairs) {
    if (!pairs || !pairs.length) return "";
    return pairs.slice(0, 4).map(function (p) { return "L" + p[0] + " " + human(p[1]); }).join(", ") +
      (pairs.length > 4 ? ", …" : "");
  }
  function describe(n, path) {
    var parts = [n.k === "r" ? label(n) + " in " + path : path];
    parts.push(human(n.v) + " visible in " + n.f.toLocaleString("en") + " file" + (n.f === 1 ? "" : "s") +
      (n.l && n.l.length ? " (" + layersText(n.l) + ")" : ""));
    if (n.x) parts.push(human(n.x) + " dead in " + n.xf.toLocaleString("en") + " hidden version" +
      (n.xf === 1 ? "" : "s") + " (written by " + layersText(n.xl) + ")");
    if (n.k === "d" && n.e) parts.push(n.e.toLocaleString("en") + " entries not listed");
    return parts.join("; ");
  }
  function zoomable(n) { return n.k === "d" && n.c && n.c.length > 0; }

  // squarify: items [{node, a}] sorted by a descending; returns [{node, x, y, w, h}]
  function worst(row, sum, side) {
    var mx = 0, mn = Infinity;
    for (var i = 0; i < row.length; i++) { mx = Math.max(mx, row[i].a); mn = Math.min(mn, row[i].a); }
    var s2 = sum * sum, w2 = side * side;
    return Math.max(w2 * mx / s2, s2 / (w2 * mn));
  }
  function squarify(nodes, x, y, w, h) {
    var out = [], sum = 0, i;
    for (i = 0; i < nodes.length; i++) sum += total(nodes[i]);
    if (sum <= 0 || w <= 0 || h <= 0) return out;
    var scale = w * h / sum, rest = [];
    for (i = 0; i < nodes.length; i++) if (total(nodes[i]) > 0) rest.push({ node: nodes[i], a: total(nodes[i]) * scale });
    while (rest.length) {
      var side = Math.min(w, h), row = [rest[0]], rowSum = rest[0].a, best = worst(row, rowSum, side), k = 1;
      while (k < rest.length) {
        var cand = rowSum + rest[k].a, wv = worst(row.concat([rest[k]]), cand, side);
        if (wv > best) break;
        row.push(rest[k]); rowSum = cand; best = wv; k++;
      }
      var j, r;
      if (w >= h) {
        var rw = rowSum / h, yy = y;
        for (j = 0; j < row.length; j++) { r = row[j]; var rh = r.a / rw; out.push({ node: r.node, x: x, y: yy, w: rw, h: rh }); yy += rh; }
        x += rw; w -= rw;
      } else {
        var rh2 = rowSum / w, xx = x;
        for (j = 0; j < row.length; j++) { r = row[j]; var cw = r.a / rh2; out.push({ node: r.node, x: xx, y: y, w: cw, h: rh2 }); xx += cw; }
        y += rh2; h -= rh2;
      }
      rest = rest.slice(k);
    }
    return out;
  }

  function el(name, attrs, parent) {
    var e = document.createElementNS(SVGNS, name);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, x, y, w, str, cls) {
    var max = Math.floor((w - 6) / 6.6);
    if (max < 3) return;
    if (str.length > max) str = str.slice(0, max - 1) + "…";
    var t = el("text", { x: x + 3, y: y + 12, class: cls || "" }, parent);
    t.textContent = str;
  }
  function leaf(g, n, x, y, w, h, showText) {
    var t = total(n), vis = n.v, split = t > 0 ? vis / t : 1, wide = w >= h;
    var vw = wide ? w * split : w, vh = wide ? h : h * split;
    if (vis > 0) el("rect", { x: x, y: y, width: Math.max(vw, 0), height: Math.max(vh, 0), fill: colour(mainLayer(n.l)) }, g);
    if (n.x) {
      var dx = wide ? x + vw : x, dy = wide ? y : y + vh, dw = wide ? w - vw : w, dh = wide ? h : h - vh;
      el("rect", { x: dx, y: dy, width: Math.max(dw, 0), height: Math.max(dh, 0), fill: colour(mainLayer(n.xl)) }, g);
      el("rect", { x: dx, y: dy, width: Math.max(dw, 0), height: Math.max(dh, 0), fill: "url(#bilge-hatch)" }, g);
      if (showText && vis > 0 && dh >= 15) text(g, dx, dy, dw, "dead " + human(n.x) + " L" + mainLayer(n.xl));
    }
    if (showText && h >= 15) {
      var lay = vis > 0 ? human(vis) + " L" + mainLayer(n.l) : "dead " + human(n.x) + " L" + mainLayer(n.xl);
      text(g, x, y, w, label(n) + " " + lay);
    }
  }

  function focusables() { return Array.prototype.slice.call(box.querySelectorAll("g.node")); }
  function show(msg) { detail.textContent = msg; }

  function render(focusFirst) {
    var cur = stack[stack.length - 1];
    var curPath = stack.reduce(function (p, n, i) { return i === 0 ? "/" : pathOf(p, n); }, "/");
    var W = Math.max(box.clientWidth, 320), H = Math.max(box.clientHeight, 200);
    while (box.firstChild) box.removeChild(box.firstChild);
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "presentation", "aria-hidden": "false" }, box);
    var defs = el("defs", {}, svg);
    var pat = el("pattern", { id: "bilge-hatch", patternUnits: "userSpaceOnUse", width: 7, height: 7, patternTransform: "rotate(45)" }, defs);
    el("rect", { width: 3, height: 7, fill: "rgba(0,0,0,0.55)" }, pat);
    el("rect", { x: 3, width: 4, height: 7, fill: "rgba(255,255,255,0.45)" }, pat);
    var kids = cur.c && cur.c.length ? cur.c.slice() : [cur];
    kids.sort(function (a, b) { return total(b) - total(a); });
    var cells = squarify(kids, 0, 0, W, H);
    if (!cells.length) {
      var t = el("text", { x: 12, y: 24 }, svg);
      t.textContent = "No file bytes to draw.";
    }
    cells.forEach(function (c) {
      var n = c.node, path = n === cur ? curPath : pathOf(curPath, n), desc = describe(n, path);
      var g = el("g", { class: "node" + (zoomable(n) && n !== cur ? " zoom" : ""), tabindex: 0,
        role: zoomable(n) && n !== cur ? "button" : "img", "aria-label": desc, "data-path": path }, svg);
      el("title", {}, g).textContent = desc;
      var inner = zoomable(n) && n !== cur && c.w > 40 && c.h > HEAD + 14;
      if (inner) {
        el("rect", { x: c.x, y: c.y, width: c.w, height: c.h, fill: "#e8eaed" }, g);
        text(g, c.x, c.y, c.w, label(n) + " " + human(total(n)) + (n.x ? " (" + human(n.x) + " dead)" : ""), "head");
        var sub = n.c.slice().sort(function (a, b) { return total(b) - total(a); });
        squarify(sub, c.x + 2, c.y + HEAD, c.w - 4, c.h - HEAD - 2).forEach(function (s) {
          var sg = el("g", {}, g);
          el("title", {}, sg).textContent = describe(s.node, pathOf(path, s.node));
          leaf(sg, s.node, s.x, s.y, s.w, s.h, s.w > 50);
        });
      } else {
        leaf(g, n, c.x, c.y, c.w, c.h, true);
      }
      el("rect", { class: "frame", x: c.x + 0.5, y: c.y + 0.5, width: Math.max(c.w - 1, 0), height: Math.max(c.h - 1, 0) }, g);
      g.addEventListener("mouseenter", function () { show(desc); });
      g.addEventListener("focus", function () { show(desc); });
      if (zoomable(n) && n !== cur) g.addEventListener("click", function () { zoom(n); });
      g.addEventListener("keydown", function (ev) {
        var list = focusables(), i = list.indexOf(g);
        if ((ev.key === "Enter" || ev.key === " ") && zoomable(n) && n !== cur) { ev.preventDefault(); zoom(n); }
        else if (ev.key === "Escape" || ev.key === "Backspace") { ev.preventDefault(); up(); }
        else if (ev.key === "ArrowRight" || ev.key === "ArrowDown") { ev.preventDefault(); if (list[i + 1]) list[i + 1].focus(); }
        else if (ev.key === "ArrowLeft" || ev.key === "ArrowUp") { ev.preventDefault(); if (list[i - 1]) list[i - 1].focus(); }
      });
    });
    // breadcrumbs
    while (crumbs.firstChild) crumbs.removeChild(crumbs.firstChild);
    var p = "/";
    stack.forEach(function (n, i) {
      if (i > 0) { p = pathOf(p, n); var sep = document.createElement("span"); sep.textContent = " › "; sep.setAttribute("aria-hidden", "true"); crumbs.appendChild(sep); }
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = i === 0 ? "/ (" + human(total(n)) + ")" : n.n + " (" + human(total(n)) + ")";
      b.setAttribute("aria-label", (i === 0 ? "root" : p) + ", " + human(total(n)));
      if (i === stack.length - 1) b.setAttribute("aria-current", "location");
      b.addEventListener("click", function () { stack = stack.slice(0, i + 1); render(true); });
      crumbs.appendChild(b);
    });
    if (focusFirst) { var f = focusables()[0]; if (f) f.focus(); }
    else show(describe(cur, curPath));
  }
  function zoom(n) { stack.push(n); render(true); }
  function up() { if (stack.length > 1) { stack.pop(); render(true); } }

  render(false);
  var timer = null;
  window.addEventListener("resize", function () { clearTimeout(timer); timer = setTimeout(function () { render(false); }, 150); });
})();
