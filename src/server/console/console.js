// The license server's console: plain DOM, no framework, no build step.
// Every value the server sends is shown through textContent or an SVG
// attribute, never parsed as HTML: a client named "<script>..." is text.
// The admin token lives in sessionStorage (this tab only) and travels in
// the Authorization header, never in a URL.
'use strict';

(() => {
  const TOKEN_KEY = 'entitle.console.token';
  const VIEWS = ['overview', 'leases', 'history', 'licenses', 'events'];
  const SVG = 'http://www.w3.org/2000/svg';
  const REFRESH_MS = 15000;

  const $ = (id) => document.getElementById(id);

  // ---- building the page ---------------------------------------------------

  /** An element with attributes and children (strings become text nodes). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  /** An SVG element, the same way. */
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') node.setAttribute('class', value);
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function replace(container, ...children) {
    container.replaceChildren();
    append(container, children);
  }

  function say(id, text, kind) {
    const node = $(id);
    node.textContent = text || '';
    node.className = 'message' + (kind ? ' ' + kind : '');
  }

  /**
   * A table: `columns` are {label, value(row) -> string | Node, num?}.
   * Missing values show as a dash.
   */
  function table(columns, rows, empty) {
    if (!rows.length) return el('p', { class: 'empty' }, empty || 'None.');
    const head = el('tr', {}, columns.map((c) => el('th', { class: c.num ? 'num' : null }, c.label)));
    const body = rows.map((row) =>
      el('tr', {}, columns.map((c) => {
        const value = c.value(row);
        return el('td', { class: c.num ? 'num' : null }, value === undefined || value === null || value === '' ? '—' : value);
      })));
    // A long name scrolls its table, not the page.
    return el('div', { class: 'scroll' }, el('table', {}, el('thead', {}, head), el('tbody', {}, body)));
  }

  /** Any JSON value as one line of text. */
  function text(value) {
    if (value === undefined || value === null) return '';
    if (typeof value === 'string') return value;
    return JSON.stringify(value);
  }

  // ---- times ---------------------------------------------------------------

  function parseTime(iso) {
    const ms = Date.parse(iso);
    return Number.isFinite(ms) ? ms : null;
  }

  /** `2026-05-01 09:00:00 UTC`: the server's times, unambiguous. */
  function fmtTime(iso) {
    if (!iso) return '';
    const ms = parseTime(iso);
    if (ms === null) return text(iso);
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }

  /** "in 3 days", "5 min ago". */
  function relative(iso) {
    const ms = parseTime(iso);
    if (ms === null) return '';
    const delta = ms - Date.now();
    const abs = Math.abs(delta);
    const units = [[86400000, 'day'], [3600000, 'hour'], [60000, 'min'], [1000, 's']];
    let phrase = 'now';
    for (const [size, unit] of units) {
      if (abs >= size) {
        const n = Math.floor(abs / size);
        phrase = n + ' ' + unit + (n > 1 && unit !== 'min' && unit !== 's' ? 's' : '');
        break;
      }
    }
    if (phrase === 'now') return 'now';
    return delta > 0 ? 'in ' + phrase : phrase + ' ago';
  }

  function timeCell(iso) {
    if (!iso) return null;
    return el('span', { class: 'time', title: text(iso) }, fmtTime(iso), el('span', { class: 'sub' }, relative(iso)));
  }

  // ---- the API -------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, route) {
      super(message);
      this.status = status;
      this.code = code;
      this.route = route;
    }

    /** What a view says about it: a missing route is told apart. */
    describe(what) {
      if (this.status === 404 && this.code === 'NOT_FOUND') {
        // A route the server does not have at all (an older server), or one
        // it has turned off, which says why.
        const why = this.message && !/no such route/.test(this.message)
          ? ': ' + this.message
          : ' (it may be an older version)';
        return what + ' is not available: this server answers 404 to ' + this.route + why + '.';
      }
      if (this.status === 0) return what + ': ' + this.message;
      return what + ' failed: ' + this.status + (this.code ? ' ' + this.code : '') +
        (this.message ? ': ' + this.message : '');
    }
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }

  /** One admin call; throws an ApiError for any answer but 2xx. */
  async function api(method, path, body, bearer) {
    const route = method + ' ' + path.split('?')[0];
    const headers = { Authorization: 'Bearer ' + (bearer === undefined ? token() : bearer) };
    if (body !== undefined) headers['Content-Type'] = 'text/plain; charset=utf-8';
    let response;
    try {
      response = await fetch(path, {
        method, headers, body, cache: 'no-store', credentials: 'omit', redirect: 'error',
      });
    } catch (e) {
      throw new ApiError(0, 'NETWORK', 'the server did not answer (' + e.message + ')', route);
    }
    if (response.ok) return response;
    let code = '';
    let message = response.statusText;
    try {
      const answer = await response.json();
      code = text(answer.error && answer.error.code);
      message = text(answer.error && answer.error.message) || message;
    } catch (_) { /* not JSON: the status says it */ }
    const error = new ApiError(response.status, code, message, route);
    if (response.status === 401 && bearer === undefined) {
      signOut('The server refused the token (401 ' + code + '): sign in again.');
    }
    throw error;
  }

  async function getJson(path) {
    return (await api('GET', path)).json();
  }

  /** The list of an answer: `items`, or the answer itself when a list. */
  function itemsOf(answer) {
    if (Array.isArray(answer)) return answer;
    if (answer && Array.isArray(answer.items)) return answer.items;
    if (answer && Array.isArray(answer.pools)) return answer.pools;
    return [];
  }

  function query(params) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== '') search.set(name, String(value));
    }
    const s = search.toString();
    return s ? '?' + s : '';
  }

  // ---- signing in ----------------------------------------------------------

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    stopRefresh();
    $('nav').hidden = true;
    $('sign-out').hidden = true;
    for (const view of VIEWS) $('view-' + view).hidden = true;
    $('sign-in').hidden = false;
    say('sign-in-error', message || '', message ? 'error' : '');
    $('token').focus();
  }

  async function signIn(event) {
    event.preventDefault();
    const typed = $('token').value.trim();
    if (!typed) {
      say('sign-in-error', 'Type the admin token.', 'error');
      return;
    }
    say('sign-in-error', 'Signing in…');
    try {
      await api('GET', '/admin/license/status', undefined, typed);
    } catch (e) {
      const message = e.status === 401
        ? 'The server refused this token.'
        : e.describe('Signing in');
      say('sign-in-error', message, 'error');
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, typed);
    $('token').value = '';
    say('sign-in-error', '');
    enter();
  }

  function enter() {
    $('sign-in').hidden = true;
    $('nav').hidden = false;
    $('sign-out').hidden = false;
    show();
  }

  // ---- navigation ----------------------------------------------------------

  // The latest call of a view wins: an answer that comes back after a newer
  // call was made (a filter changed, a refresh) is dropped, not drawn over
  // the newer one.
  const tickets = {};

  function ticket(view) {
    tickets[view] = (tickets[view] || 0) + 1;
    return tickets[view];
  }

  function stale(view, number) {
    return tickets[view] !== number;
  }

  let refreshTimer = null;

  function stopRefresh() {
    if (refreshTimer !== null) clearInterval(refreshTimer);
    refreshTimer = null;
  }

  function currentView() {
    const name = location.hash.replace(/^#/, '');
    return VIEWS.includes(name) ? name : 'overview';
  }

  function show() {
    if (!token()) return;
    const current = currentView();
    for (const view of VIEWS) $('view-' + view).hidden = view !== current;
    for (const link of document.querySelectorAll('#nav a')) {
      link.classList.toggle('current', link.dataset.view === current);
    }
    stopRefresh();
    load(current);
    // Seats move by themselves: the live views follow them.
    if (current === 'overview' || current === 'leases') {
      refreshTimer = setInterval(() => load(current, true), REFRESH_MS);
    }
  }

  function load(view, quietly) {
    const loaders = {
      overview: loadOverview,
      leases: () => loadLeases(false, quietly),
      history: () => loadHistory(false),
      licenses: () => loadLicenses(false),
      events: () => loadEvents(false),
    };
    return loaders[view]().catch((e) => {
      // An error a loader did not place is still shown, in its view.
      const target = $(view + '-message') || $('banners');
      if (target) {
        target.textContent = e instanceof ApiError ? e.describe('Loading') : 'Loading failed: ' + e.message;
        target.className = (target.id === 'banners' ? 'banner error' : 'message error');
      }
    });
  }

  // ---- overview ------------------------------------------------------------

  function banner(kind, ...children) {
    return el('p', { class: 'banner ' + kind, role: kind === 'error' ? 'alert' : null }, ...children);
  }

  function licenseName(license) {
    return license.name ? license.name + ' (' + license.id + ')' : text(license.id);
  }

  /** What the administrator should hear about one license, if anything. */
  function licenseBanner(license) {
    const name = licenseName(license);
    switch (license.status) {
      case 'grace':
        return banner('warn', 'License ' + name + ' expired on ' + fmtTime(license.expires_at) +
          '; its grace period ends on ' + fmtTime(license.grace_ends_at) + ' (' +
          relative(license.grace_ends_at) + '). Renew it before then.');
      case 'expired':
        return banner('error', 'License ' + name + ' expired on ' + fmtTime(license.expires_at) +
          (license.grace_ends_at ? ', and its grace period ended on ' + fmtTime(license.grace_ends_at) : '') + '.');
      case 'suspended':
        return banner('error', 'License ' + name + ' is suspended.');
      case 'revoked':
        return banner('error', 'License ' + name + ' is revoked.');
      case 'clock_tampered':
        return banner('error', 'License ' + name + ' is held: the clock is behind the latest time seen.');
      case 'pending':
        return banner('warn', 'License ' + name + ' starts on ' + fmtTime(license.starts_at) + '.');
      default: {
        const ends = parseTime(license.expires_at);
        if (ends !== null && ends - Date.now() < 30 * 86400000) {
          return banner('warn', 'License ' + name + ' expires on ' + fmtTime(license.expires_at) +
            ' (' + relative(license.expires_at) + ').');
        }
        return null;
      }
    }
  }

  async function allLicenses() {
    const items = [];
    let cursor = null;
    // A site holds a handful of licenses; the bound keeps a bad cursor finite.
    for (let page = 0; page < 20; page++) {
      const answer = await getJson('/admin/license' + query({ limit: 100, cursor }));
      items.push(...itemsOf(answer));
      cursor = answer.next_cursor;
      if (!cursor) break;
    }
    return items;
  }

  function poolName(pool) {
    return pool.feature ? text(pool.feature) : 'License pool (features without a pool of their own)';
  }

  function poolsTable(pools) {
    return table([
      { label: 'Pool', value: poolName },
      {
        label: 'In use',
        value: (p) => el('span', { class: 'seats' },
          el('meter', { min: 0, max: Math.max(Number(p.seats) || 0, 1), value: Number(p.in_use) || 0, high: Math.max((Number(p.seats) || 1) * 0.9, 0.5) }),
          text(p.in_use) + ' of ' + text(p.seats)),
      },
      { label: 'Borrowed', value: (p) => text(p.borrowed), num: true },
      { label: 'Lingering', value: (p) => text(p.lingering), num: true },
      { label: 'Queued', value: (p) => text(p.queued), num: true },
    ], pools, 'No license here has floating seats.');
  }

  async function loadOverview() {
    const [status, licenses, pools] = await Promise.allSettled([
      getJson('/admin/license/status'),
      allLicenses(),
      getJson('/admin/pools'),
    ]);

    const banners = [];
    if (status.status === 'fulfilled' && status.value.clock_tampered) {
      banners.push(banner('error', 'The clock of the server is behind the latest time it has seen: rights that depend on the time are held until it is right again.'));
    }
    if (licenses.status === 'fulfilled') {
      for (const license of licenses.value) {
        const b = licenseBanner(license);
        if (b) banners.push(b);
      }
      if (!licenses.value.length) banners.push(banner('warn', 'No license is installed: add one in Licenses.'));
      else if (!banners.length) {
        banners.push(banner('ok', licenses.value.length === 1 ? 'The license is in force.' : 'All ' + licenses.value.length + ' licenses are in force.'));
      }
    } else {
      banners.push(banner('error', describe(licenses.reason, 'The list of licenses')));
    }
    replace($('banners'), banners);

    // Pools: their own route, else what the status carries.
    if (pools.status === 'fulfilled') {
      replace($('pools'), poolsTable(itemsOf(pools.value)));
    } else if (status.status === 'fulfilled' && status.value.floating) {
      replace($('pools'), poolsTable(itemsOf(status.value.floating)));
    } else {
      replace($('pools'), banner('unavailable', describe(pools.reason, 'The pools')));
    }

    if (licenses.status === 'fulfilled') {
      replace($('overview-licenses'), table([
        { label: 'License', value: licenseName },
        { label: 'Status', value: (l) => el('span', { class: 'badge ' + text(l.status) }, text(l.status)) },
        { label: 'Expires', value: (l) => timeCell(l.expires_at) || 'never' },
        // A license without grace ends when it expires: nothing more to say.
        { label: 'Grace ends', value: (l) => (l.grace_ends_at !== l.expires_at ? timeCell(l.grace_ends_at) : null) },
        { label: 'Floating seats', value: (l) => (l.floating ? text(l.floating.seats) : ''), num: true },
      ], licenses.value, 'No license is installed.'));
    } else {
      replace($('overview-licenses'));
    }

    if (status.status === 'fulfilled') {
      const s = status.value;
      replace($('users'), el('p', {},
        text(s.active_user_count) + ' active of ' + text(s.total_users) + ' users; ' +
        text(s.license_seats) + ' named seats licensed' +
        (Number(s.hard_seats) > Number(s.license_seats) ? ', up to ' + text(s.hard_seats) + ' with overage.' : '.')));
    } else {
      replace($('users'), banner('unavailable', describe(status.reason, 'The status')));
    }
  }

  function describe(error, what) {
    return error instanceof ApiError ? error.describe(what) : what + ' failed: ' + (error && error.message);
  }

  // ---- leases --------------------------------------------------------------

  const leasesState = { cursor: null, rows: [] };

  async function loadLeases(more, quietly) {
    const params = {
      feature: $('leases-feature').value.trim(),
      client: $('leases-client').value.trim(),
      limit: 100,
      cursor: more ? leasesState.cursor : null,
    };
    const number = ticket('leases');
    let answer;
    try {
      answer = await getJson('/admin/leases' + query(params));
    } catch (e) {
      if (stale('leases', number)) return;
      say('leases-message', describe(e, 'The list of leases'), 'error');
      replace($('leases'));
      $('leases-more').hidden = true;
      return;
    }
    if (stale('leases', number)) return;
    leasesState.rows = more ? leasesState.rows.concat(itemsOf(answer)) : itemsOf(answer);
    leasesState.cursor = answer.next_cursor || null;
    $('leases-more').hidden = !leasesState.cursor;
    if (!quietly) say('leases-message', leasesState.rows.length + ' lease' + (leasesState.rows.length === 1 ? '' : 's') + ' held.');
    replace($('leases'), table([
      { label: 'Client', value: (l) => el('span', { class: 'client' }, text(l.client)) },
      { label: 'Pool', value: (l) => (l.feature ? text(l.feature) : 'license pool') },
      { label: 'Address', value: (l) => el('span', { class: 'mono' }, text(l.address)) },
      { label: 'Checked out', value: (l) => timeCell(l.checked_out_at) },
      { label: 'Last heartbeat', value: (l) => timeCell(l.last_heartbeat_at) },
      { label: 'Expires', value: (l) => timeCell(l.expires_at) },
      {
        label: 'Borrow / linger',
        value: (l) => (l.borrowed_until
          ? el('span', {}, el('span', { class: 'badge borrowed' }, 'borrowed'), ' until ', fmtTime(l.borrowed_until))
          : l.lingering_until ? el('span', {}, 'lingering until ', fmtTime(l.lingering_until)) : null),
      },
      { label: 'Licenses', value: (l) => (Array.isArray(l.license_ids) ? l.license_ids.join(', ') : text(l.license_ids)) },
      {
        label: '',
        value: (l) => el('button', {
          type: 'button', class: 'danger', 'data-lease': text(l.id), onclick: () => forceRelease(l),
        }, 'Force release'),
      },
    ], leasesState.rows, 'No seat is leased now.'));
  }

  async function forceRelease(lease) {
    const who = text(lease.client);
    const pool = lease.feature ? text(lease.feature) : 'the license pool';
    if (!window.confirm('Free the seat of ' + pool + ' held by "' + who + '" now? ' +
      'Its next heartbeat will be told LEASE_EXPIRED.')) return;
    try {
      await api('DELETE', '/admin/leases/' + encodeURIComponent(text(lease.id)));
    } catch (e) {
      say('leases-message', describe(e, 'Releasing the seat of "' + who + '"'), 'error');
      return;
    }
    await loadLeases(false, true);
    say('leases-message', 'Released the seat held by "' + who + '".', 'ok');
  }

  // ---- history -------------------------------------------------------------

  function historyRange() {
    const [secs, step] = $('history-range').value.split(':');
    const to = new Date();
    const from = new Date(to.getTime() - Number(secs) * 1000);
    return {
      from: from.toISOString().replace(/\.\d+Z$/, 'Z'),
      to: to.toISOString().replace(/\.\d+Z$/, 'Z'),
      step,
      feature: $('history-pool').value,
    };
  }

  /**
   * The pools a series can be drawn for: the license-level pool, then each
   * feature's own (from the pools, else from the licenses' features).
   */
  const historySeats = new Map();

  async function loadHistoryPools() {
    let features = [];
    historySeats.clear();
    try {
      const pools = itemsOf(await getJson('/admin/pools'));
      for (const p of pools) historySeats.set(p.feature ? text(p.feature) : '', Number(p.seats) || 0);
      features = pools.map((p) => p.feature).filter(Boolean);
    } catch (_) {
      try {
        for (const license of await allLicenses()) {
          for (const f of license.features || []) if (f.floating) features.push(f.code);
        }
      } catch (_) { /* the history's own call says what is wrong */ }
    }
    const select = $('history-pool');
    const chosen = select.value;
    const codes = [...new Set(features.map(text))].sort();
    replace(select, el('option', { value: '' }, 'License pool'),
      codes.map((code) => el('option', { value: code }, code)));
    select.value = codes.includes(chosen) ? chosen : '';
  }

  async function loadHistory(keepPools) {
    const number = ticket('history');
    if (!keepPools) await loadHistoryPools();
    if (stale('history', number)) return;
    const range = historyRange();
    say('history-message', 'Loading…');
    let answer;
    try {
      answer = await getJson('/admin/history' + query(range));
    } catch (e) {
      if (stale('history', number)) return;
      say('history-message', describe(e, 'The history'), 'error');
      replace($('history-chart'));
      $('history-summary').textContent = '';
      return;
    }
    if (stale('history', number)) return;
    const items = itemsOf(answer)
      .map((i) => ({
        at: parseTime(i.at),
        inUse: Number(i.in_use_peak) || 0,
        denials: Number(i.denials) || 0,
        queued: Number(i.queued_peak) || 0,
      }))
      .filter((i) => i.at !== null)
      .sort((a, b) => a.at - b.at);
    say('history-message', items.length ? '' : 'Nothing was recorded in this range.');
    replace($('history-chart'), chart(items, parseTime(range.from), parseTime(range.to), range.step, historySeats.get(range.feature)));
    const peak = items.reduce((m, i) => Math.max(m, i.inUse), 0);
    const denials = items.reduce((s, i) => s + i.denials, 0);
    const queued = items.reduce((m, i) => Math.max(m, i.queued), 0);
    $('history-summary').textContent = 'Peak seats in use ' + peak + ', denials ' + denials +
      ', longest queue ' + queued + ', by ' + range.step + ' from ' + fmtTime(range.from) + ' to ' + fmtTime(range.to) +
      (range.feature ? ', pool of ' + range.feature : ', license pool') + '.';
  }

  /** Round numbers for an axis from 0 to at least `max`. */
  function ticks(max) {
    const top = Math.max(max, 1);
    const rough = top / 5;
    const magnitude = Math.pow(10, Math.floor(Math.log10(rough)));
    const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough && s >= 1) || 1;
    const values = [];
    for (let v = 0; v <= top + step / 2 && values.length < 12; v += step) values.push(v);
    if (values[values.length - 1] < top) values.push(values[values.length - 1] + step);
    return values;
  }

  const MINUTE = 60000;
  const HOUR = 60 * MINUTE;
  const DAY = 24 * HOUR;
  const STEP_MS = { minute: MINUTE, hour: HOUR, day: DAY };
  const TIME_TICKS = [MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR,
    3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY];

  /** Instants on round UTC boundaries across [from, to], at most 8. */
  function timeTicks(from, to) {
    const span = to - from;
    const every = TIME_TICKS.find((t) => span / t <= 8) || 30 * DAY;
    const ticksAt = [];
    for (let t = Math.ceil(from / every) * every; t <= to; t += every) ticksAt.push(t);
    return { ticksAt, every };
  }

  function timeLabel(ms, every, span) {
    const iso = new Date(ms).toISOString();
    if (every >= DAY) return iso.slice(5, 10);
    if (span > 2 * DAY) return iso.slice(5, 10) + ' ' + iso.slice(11, 16);
    return iso.slice(11, 16);
  }

  /**
   * Seats in use as steps (each point holds for its step), queued as a
   * dashed step line, denials as bars, the pool's seats as a rule: SVG.
   */
  function chart(items, from, to, step, seats) {
    const W = 920, H = 320;
    const m = { left: 48, right: 16, top: 34, bottom: 40 };
    const plotW = W - m.left - m.right;
    const plotH = H - m.top - m.bottom;
    const bucket = STEP_MS[step] || HOUR;
    // The axis spans whole buckets: the first may start before `from`, the
    // last (the one holding `to`) ends after it.
    if (items.length) {
      from = Math.min(from, items[0].at);
      to = Math.max(to, items[items.length - 1].at + bucket);
    }
    const span = Math.max(to - from, 1);
    const max = items.reduce((v, i) => Math.max(v, i.inUse, i.denials, i.queued), seats || 0);
    const yTicks = ticks(max);
    const yTop = yTicks[yTicks.length - 1];
    const x = (ms) => m.left + Math.min(Math.max((ms - from) / span, 0), 1) * plotW;
    const y = (v) => m.top + plotH - (v / yTop) * plotH;
    const r = (n) => Math.round(n * 10) / 10;
    const iso = (ms) => fmtTime(new Date(ms).toISOString());

    const root = svg('svg', {
      viewBox: '0 0 ' + W + ' ' + H, role: 'img',
      'aria-label': 'Seats in use and denials from ' + iso(from) + ' to ' + iso(to),
    });

    // Grid and y axis.
    const grid = svg('g', { class: 'grid' });
    const yAxis = svg('g', { class: 'axis y' });
    for (const v of yTicks) {
      grid.append(svg('line', { x1: m.left, x2: W - m.right, y1: r(y(v)), y2: r(y(v)) }));
      yAxis.append(svg('text', { x: m.left - 8, y: r(y(v)) + 4, 'text-anchor': 'end' }, String(v)));
    }
    yAxis.append(svg('line', { x1: m.left, x2: m.left, y1: m.top, y2: m.top + plotH }));
    yAxis.append(svg('text', { x: 12, y: m.top + plotH / 2, transform: 'rotate(-90 12 ' + (m.top + plotH / 2) + ')', 'text-anchor': 'middle' }, 'seats / denials'));

    // X axis on round instants.
    const xAxis = svg('g', { class: 'axis x' });
    xAxis.append(svg('line', { x1: m.left, x2: W - m.right, y1: m.top + plotH, y2: m.top + plotH }));
    const { ticksAt, every } = timeTicks(from, to);
    for (const ms of ticksAt) {
      const px = r(x(ms));
      xAxis.append(svg('line', { x1: px, x2: px, y1: m.top + plotH, y2: m.top + plotH + 5 }));
      xAxis.append(svg('text', { x: px, y: m.top + plotH + 18, 'text-anchor': 'middle' }, timeLabel(ms, every, span)));
    }
    xAxis.append(svg('text', { x: m.left + plotW / 2, y: H - 4, 'text-anchor': 'middle' }, 'time (UTC), one point per ' + step));
    root.append(grid, yAxis, xAxis);

    if (seats) {
      root.append(svg('line', { class: 'capacity', x1: m.left, x2: W - m.right, y1: r(y(seats)), y2: r(y(seats)) }));
      root.append(svg('text', { class: 'capacity-label', x: W - m.right - 4, y: r(y(seats)) - 4, 'text-anchor': 'end' }, seats + ' seat' + (seats === 1 ? '' : 's')));
    }

    // Denials: a bar in the middle of each bucket that had any.
    const barW = Math.max(2, Math.min(24, (bucket / span) * plotW * 0.6));
    const bars = svg('g', { class: 'denials-bars' });
    for (const i of items) {
      if (!i.denials) continue;
      const middle = x(Math.min(i.at + bucket / 2, to));
      bars.append(svg('rect', {
        class: 'denials', x: r(middle - barW / 2), y: r(y(i.denials)), width: r(barW), height: r(m.top + plotH - y(i.denials)),
      }, svg('title', {}, iso(i.at) + ': ' + i.denials + ' denied')));
    }
    if (!items.length) root.append(bars);

    if (items.length) {
      const steps = (value) => {
        let d = '';
        let lastX = null;
        for (const i of items) {
          const x0 = r(x(i.at));
          const x1 = r(x(Math.min(i.at + bucket, to)));
          const y0 = r(y(value(i)));
          d += lastX === null ? 'M' + x0 + ' ' + y0 : Math.abs(x0 - lastX) > 0.5 ? ' L' + x0 + ' ' + y0 : ' V' + y0;
          d += ' H' + x1;
          lastX = x1;
        }
        return d;
      };
      const line = steps((i) => i.inUse);
      const first = r(x(items[0].at));
      root.append(svg('path', { class: 'in-use-area', d: line + ' V' + r(y(0)) + ' H' + first + ' Z' }));
      root.append(bars);
      root.append(svg('path', { class: 'queued', d: steps((i) => i.queued) }));
      root.append(svg('path', { class: 'in-use', d: line }));
      // A tooltip per bucket, while there are few enough to point at.
      if (items.length <= 400) {
        const hover = svg('g', { class: 'hover' });
        for (const i of items) {
          const x0 = x(i.at);
          hover.append(svg('rect', { x: r(x0), y: m.top, width: r(Math.max(x(Math.min(i.at + bucket, to)) - x0, 1)), height: plotH },
            svg('title', {}, iso(i.at) + ': ' + i.inUse + ' in use, ' + i.denials + ' denied, ' + i.queued + ' queued')));
        }
        root.append(hover);
      }
    }

    // Legend.
    const legend = svg('g', { class: 'legend', transform: 'translate(' + m.left + ' 12)' });
    legend.append(svg('line', { class: 'in-use', x1: 0, x2: 18, y1: 0, y2: 0 }));
    legend.append(svg('text', { x: 24, y: 4 }, 'seats in use (peak)'));
    legend.append(svg('rect', { class: 'denials', x: 160, y: -5, width: 12, height: 10 }));
    legend.append(svg('text', { x: 178, y: 4 }, 'denials'));
    legend.append(svg('line', { class: 'queued', x1: 250, x2: 268, y1: 0, y2: 0 }));
    legend.append(svg('text', { x: 274, y: 4 }, 'queued (peak)'));
    root.append(legend);
    return root;
  }

  /** The CSV, fetched with the token and saved from a blob. */
  async function downloadCsv() {
    const range = historyRange();
    let blob;
    try {
      blob = await (await api('GET', '/admin/history.csv' + query(range))).blob();
    } catch (e) {
      say('history-message', describe(e, 'The CSV download'), 'error');
      return;
    }
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: 'history-' + range.from.slice(0, 10) + '-' + range.to.slice(0, 10) + '-' + range.step + '.csv' });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    say('history-message', 'Downloaded ' + blob.size + ' bytes of CSV.', 'ok');
  }

  // ---- licenses ------------------------------------------------------------

  const licensesState = { cursor: null, rows: [] };

  async function loadLicenses(more) {
    const number = ticket('licenses');
    let answer;
    try {
      answer = await getJson('/admin/license' + query({ limit: 100, cursor: more ? licensesState.cursor : null }));
    } catch (e) {
      if (!stale('licenses', number)) say('licenses-message', describe(e, 'The list of licenses'), 'error');
      return;
    }
    if (stale('licenses', number)) return;
    licensesState.rows = more ? licensesState.rows.concat(itemsOf(answer)) : itemsOf(answer);
    licensesState.cursor = answer.next_cursor || null;
    $('licenses-more').hidden = !licensesState.cursor;
    replace($('licenses'), table([
      { label: 'ID', value: (l) => el('span', { class: 'mono' }, text(l.id)) },
      { label: 'Name', value: (l) => text(l.name) },
      { label: 'Customer', value: (l) => text(l.customer) },
      { label: 'Status', value: (l) => el('span', { class: 'badge ' + text(l.status) }, text(l.status)) },
      { label: 'Kind', value: (l) => text(l.kind) },
      { label: 'Expires', value: (l) => timeCell(l.expires_at) || 'never' },
      { label: 'Floating', value: (l) => (l.floating ? text(l.floating.seats) + ' seats' : '') },
      { label: 'Features', value: (l) => (Array.isArray(l.features) ? l.features.map((f) => text(f.code)).join(', ') : '') },
      { label: 'Added', value: (l) => timeCell(l.added_at) },
      {
        label: '',
        value: (l) => el('button', { type: 'button', class: 'danger', 'data-license': text(l.id), onclick: () => removeLicense(l) }, 'Remove'),
      },
    ], licensesState.rows, 'No license is installed.'));
  }

  async function uploadLicense(event) {
    event.preventDefault();
    const file = $('license-file').files[0];
    if (!file) {
      say('licenses-message', 'Choose a license file first.', 'error');
      return;
    }
    let content;
    try {
      content = await file.text();
    } catch (e) {
      say('licenses-message', 'Could not read ' + file.name + ': ' + e.message, 'error');
      return;
    }
    let added;
    try {
      added = await (await api('POST', '/admin/license', content)).json();
    } catch (e) {
      say('licenses-message', describe(e, 'Adding ' + file.name), 'error');
      return;
    }
    $('license-file').value = '';
    await loadLicenses(false);
    say('licenses-message', 'Added license ' + (added && added.id ? licenseName(added) : file.name) + '.', 'ok');
  }

  async function removeLicense(license) {
    const name = licenseName(license);
    if (!window.confirm('Remove license ' + name + '? Its seats and features end on this server now.')) return;
    try {
      await api('DELETE', '/admin/license/' + encodeURIComponent(text(license.id)));
    } catch (e) {
      say('licenses-message', describe(e, 'Removing ' + name), 'error');
      return;
    }
    await loadLicenses(false);
    say('licenses-message', 'Removed license ' + name + '.', 'ok');
  }

  // ---- events --------------------------------------------------------------

  const eventsState = { cursor: null, rows: [], range: null };
  // The fields of an event (GET /admin/events), named for people; any other field
  // an event has is shown too, under its own name.
  const EVENT_COLUMNS = [
    ['at', 'Time'], ['kind', 'Kind'], ['feature', 'Pool'], ['client', 'Client'], ['reason', 'Reason'],
    ['lease_id', 'Lease'], ['in_use', 'In use after'], ['queued', 'Queued after'],
  ];
  const EVENT_HIDDEN = ['id'];

  async function loadEvents(more) {
    if (!more) {
      const secs = Number($('events-range').value);
      const to = new Date();
      eventsState.range = {
        from: new Date(to.getTime() - secs * 1000).toISOString().replace(/\.\d+Z$/, 'Z'),
        to: to.toISOString().replace(/\.\d+Z$/, 'Z'),
      };
    }
    const number = ticket('events');
    let answer;
    try {
      answer = await getJson('/admin/events' + query({ ...eventsState.range, cursor: more ? eventsState.cursor : null }));
    } catch (e) {
      if (stale('events', number)) return;
      say('events-message', describe(e, 'The events'), 'error');
      replace($('events'));
      $('events-more').hidden = true;
      return;
    }
    if (stale('events', number)) return;
    eventsState.rows = more ? eventsState.rows.concat(itemsOf(answer)) : itemsOf(answer);
    eventsState.cursor = answer.next_cursor || null;
    $('events-more').hidden = !eventsState.cursor;
    say('events-message', eventsState.rows.length + ' event' + (eventsState.rows.length === 1 ? '' : 's') + (eventsState.cursor ? ' so far.' : '.'));
    // The columns are the fields the events have, the usual ones first.
    const keys = new Set();
    for (const row of eventsState.rows) {
      if (row && typeof row === 'object') for (const k of Object.keys(row)) keys.add(k);
    }
    const known = EVENT_COLUMNS.map(([k]) => k);
    const columns = EVENT_COLUMNS.filter(([k]) => keys.has(k))
      .concat([...keys].filter((k) => !known.includes(k) && !EVENT_HIDDEN.includes(k)).sort().map((k) => [k, k]));
    replace($('events'), table(columns.map(([k, label]) => ({
      label,
      num: k === 'in_use' || k === 'queued',
      value: (row) => {
        if (k === 'at' || k.endsWith('_at')) return row[k] ? fmtTime(row[k]) : null;
        if (k === 'feature') return row[k] ? text(row[k]) : 'license pool';
        if (row[k] === null || row[k] === undefined) return null;
        if (k === 'client') return el('span', { class: 'client' }, text(row[k]));
        if (k === 'lease_id') return el('span', { class: 'mono' }, text(row[k]));
        return text(row[k]);
      },
    })), eventsState.rows, 'No event in this range.'));
  }

  // ---- wiring --------------------------------------------------------------

  function start() {
    $('sign-in-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', () => signOut(''));
    window.addEventListener('hashchange', show);
    for (const button of document.querySelectorAll('[data-refresh]')) {
      button.addEventListener('click', () => load(button.dataset.refresh));
    }
    $('leases-filter').addEventListener('submit', (e) => { e.preventDefault(); loadLeases(false); });
    $('leases-more').addEventListener('click', () => loadLeases(true));
    $('history-form').addEventListener('submit', (e) => { e.preventDefault(); loadHistory(true); });
    $('history-csv').addEventListener('click', downloadCsv);
    $('license-upload').addEventListener('submit', uploadLicense);
    $('licenses-more').addEventListener('click', () => loadLicenses(true));
    $('events-form').addEventListener('submit', (e) => { e.preventDefault(); loadEvents(false); });
    $('events-more').addEventListener('click', () => loadEvents(true));

    // The product's name, from the route every client may read.
    fetch('/healthz', { cache: 'no-store', credentials: 'omit' })
      .then((r) => (r.ok ? r.json() : null))
      .then((h) => { if (h && h.product) $('product').textContent = text(h.product); })
      .catch(() => {});

    if (token()) enter();
    else signOut('');
  }

  start();
})();
