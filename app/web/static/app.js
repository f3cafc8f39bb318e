// Poster web page. User text is only ever set with textContent, never as
// HTML, so a post like <img onerror=…> shows as the text it is.
"use strict";

const MAX_CHARS = 500;
const PAGE_SIZE = 20;

const $ = (id) => document.getElementById(id);
const state = { user: null, mode: "login", nextBefore: null, busy: false };

// api calls the JSON API and records which backend answered.
async function api(method, path, body, headers = {}) {
  const opts = { method, headers: { ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    setBackend(null);
    throw new Error("Cannot reach the server. Check your connection and try again.");
  }
  setBackend(res.headers.get("X-Backend"));
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch (e) { /* a proxy error page, for example */ }
  if (!res.ok) {
    const err = new Error((data && data.error) || `Request failed (${res.status})`);
    err.status = res.status;
    throw err;
  }
  return data;
}

function setBackend(name) {
  $("backend").textContent = name || "unreachable";
  $("backend-dot").className = "dot " + (name ? "ok" : "bad");
}

// Characters as the server counts them: Unicode code points, not UTF-16 units.
const charCount = (s) => [...s.trim()].length;

function avatarColor(name) {
  let h = 0;
  for (const c of name.toLowerCase()) h = (h * 31 + c.codePointAt(0)) % 360;
  return `hsl(${h} 55% 52%)`;
}

function paintAvatar(el, name) {
  el.textContent = name ? [...name][0] : "?";
  el.style.background = avatarColor(name || "?");
}

function relativeTime(iso) {
  const t = new Date(iso);
  const s = Math.round((Date.now() - t.getTime()) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  if (s < 7 * 86400) return `${Math.round(s / 86400)} d ago`;
  return t.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

function renderPost(p) {
  const li = document.createElement("li");
  li.className = "post";
  li.dataset.id = String(p.id);

  const av = document.createElement("span");
  av.className = "avatar";
  av.setAttribute("aria-hidden", "true");
  paintAvatar(av, p.author);

  const body = document.createElement("div");
  body.className = "post-body";
  const meta = document.createElement("div");
  meta.className = "post-meta";
  const author = document.createElement("span");
  author.className = "post-author";
  author.textContent = p.author;
  const time = document.createElement("time");
  time.className = "post-time";
  time.dateTime = p.created_at;
  time.title = new Date(p.created_at).toLocaleString();
  time.textContent = relativeTime(p.created_at);
  meta.append(author, time);

  const content = document.createElement("p");
  content.className = "post-content";
  content.textContent = p.content;

  body.append(meta, content);
  li.append(av, body);
  return li;
}

async function loadPosts(reset) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (!reset && state.nextBefore) params.set("before", String(state.nextBefore));
  const btn = $("load-more");
  btn.disabled = true;
  try {
    const page = await api("GET", "/api/posts?" + params);
    const list = $("posts");
    if (reset) list.replaceChildren();
    for (const p of page.posts) list.append(renderPost(p));
    state.nextBefore = page.next_before;
    btn.hidden = page.next_before == null;
    $("empty").hidden = list.children.length > 0;
  } catch (e) {
    showError("post-error", e.message);
  } finally {
    btn.disabled = false;
  }
}

function showError(id, msg) {
  const el = $(id);
  el.textContent = msg || "";
  el.hidden = !msg;
}

function render() {
  const u = state.user;
  $("auth").hidden = !!u;
  $("composer").hidden = !u;
  $("session").hidden = !u;
  if (u) {
    $("me").textContent = u.username;
    paintAvatar($("me-avatar"), u.username);
    paintAvatar($("composer-avatar"), u.username);
  }
}

function setMode(mode) {
  state.mode = mode;
  $("tab-login").setAttribute("aria-selected", String(mode === "login"));
  $("tab-register").setAttribute("aria-selected", String(mode === "register"));
  $("auth-submit").textContent = mode === "login" ? "Log in" : "Create account";
  $("password").autocomplete = mode === "login" ? "current-password" : "new-password";
  $("auth-hint").hidden = mode === "login";
  showError("auth-error", "");
}

async function onAuth(ev) {
  ev.preventDefault();
  if (state.busy) return;
  const creds = { username: $("username").value.trim(), password: $("password").value };
  state.busy = true;
  $("auth-submit").disabled = true;
  try {
    if (state.mode === "register") await api("POST", "/api/register", creds);
    state.user = await api("POST", "/api/login", creds);
    $("password").value = "";
    showError("auth-error", "");
    render();
    $("content").focus();
  } catch (e) {
    showError("auth-error", e.message);
  } finally {
    state.busy = false;
    $("auth-submit").disabled = false;
  }
}

async function onLogout() {
  try {
    await api("DELETE", "/api/logout");
  } catch (e) {
    // The cookie may be gone already; the page logs out either way.
  }
  state.user = null;
  setMode("login");
  render();
}

function updateCount() {
  const n = charCount($("content").value);
  const el = $("count");
  el.textContent = `${n} / ${MAX_CHARS}`;
  el.classList.toggle("near", n > MAX_CHARS - 50 && n <= MAX_CHARS);
  el.classList.toggle("over", n > MAX_CHARS);
  $("post-btn").disabled = n === 0 || n > MAX_CHARS || state.busy;
}

// newKey makes an Idempotency-Key, so a retried post is stored once.
function newKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function onPost(ev) {
  ev.preventDefault();
  const box = $("content");
  if (state.busy || charCount(box.value) === 0) return;
  state.busy = true;
  updateCount();
  try {
    const p = await api("POST", "/api/posts", { content: box.value }, { "Idempotency-Key": newKey() });
    const li = renderPost(p);
    li.classList.add("fresh");
    $("posts").prepend(li);
    $("empty").hidden = true;
    box.value = "";
    showError("post-error", "");
  } catch (e) {
    if (e.status === 401) {
      state.user = null;
      render();
      showError("auth-error", "Your session ended. Please log in again.");
    } else {
      showError("post-error", e.message);
    }
  } finally {
    state.busy = false;
    updateCount();
  }
}

async function init() {
  $("tab-login").addEventListener("click", () => setMode("login"));
  $("tab-register").addEventListener("click", () => setMode("register"));
  $("auth-form").addEventListener("submit", onAuth);
  $("logout").addEventListener("click", onLogout);
  $("content").addEventListener("input", updateCount);
  $("content").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("post-form").requestSubmit();
  });
  $("post-form").addEventListener("submit", onPost);
  $("load-more").addEventListener("click", () => loadPosts(false));
  $("refresh").addEventListener("click", () => loadPosts(true));
  setMode("login");
  try {
    state.user = await api("GET", "/api/user");
  } catch (e) {
    state.user = null;
  }
  render();
  await loadPosts(true);
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", init);
