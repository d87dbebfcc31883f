// siplua status page: the live chart of the overview, fed by server-sent events (/events). No library:
// a canvas and a ring of the last samples.
'use strict';
(function () {
  const canvas = document.getElementById('rate-chart');
  if (!canvas || !window.EventSource) return;
  const N = 120; // two minutes at one sample per second
  // drawn in this order: requests last and solid, on top of the dashed replies that often equal them
  const series = [
    { key: 'rep', color: '#1a7f37', dash: [6, 4] }, { key: 'fwd', color: '#8250df', dash: [2, 3] },
    { key: 'err', color: '#cf222e', dash: [] }, { key: 'in', color: '#1f6feb', dash: [] },
  ];
  const samples = [];
  const $ = (id) => document.getElementById(id);
  const fmt = (v) => (v >= 100 ? Math.round(v).toString() : v.toFixed(1));
  function uptime(s) {
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + m + 'm ' + (s % 60) + 's';
  }
  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== w * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const pad = { l: 48, r: 8, t: 8, b: 18 };
    let max = 1;
    for (const s of samples) for (const k of series) max = Math.max(max, s[k.key]);
    max = niceMax(max);
    ctx.strokeStyle = '#e4e8ec'; ctx.fillStyle = '#6a7380'; ctx.font = '11px system-ui'; ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + (h - pad.t - pad.b) * i / 4;
      ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
      ctx.fillText(fmt(max * (4 - i) / 4), 4, y + 4);
    }
    // the time axis grows with the samples up to N, so a page just opened is not a line at the right edge
    const span = Math.min(N, Math.max(samples.length, 30));
    ctx.fillText('last ' + span + ' s', w - pad.r - 60, h - 4);
    const x = (i) => pad.l + (w - pad.l - pad.r) * (i + span - samples.length) / (span - 1);
    const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - v / max);
    for (const k of series) {
      ctx.strokeStyle = k.color; ctx.lineWidth = 2; ctx.setLineDash(k.dash); ctx.beginPath();
      samples.forEach((s, i) => (i ? ctx.lineTo(x(i), y(s[k.key])) : ctx.moveTo(x(i), y(s[k.key]))));
      ctx.stroke();
    }
    ctx.setLineDash([]);
  }
  function niceMax(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return v;
  }
  const es = new EventSource(canvas.dataset.events);
  es.addEventListener('sample', (ev) => {
    const s = JSON.parse(ev.data);
    samples.push(s);
    if (samples.length > N) samples.shift();
    $('busy').textContent = s.busy;
    $('queue').textContent = s.queue;
    $('generation').textContent = s.gen;
    $('uptime').textContent = uptime(s.uptime);
    $('rate-in').textContent = fmt(s.in);
    $('samples').textContent = samples.length;
    // for tests and curious operators: the last plotted request rate
    canvas.dataset.lastIn = s.in;
    canvas.dataset.maxIn = Math.max(Number(canvas.dataset.maxIn || 0), s.in);
    draw();
  });
  window.addEventListener('resize', draw);
})();
