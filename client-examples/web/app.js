// chat-tokend web client example. Like the Agora sample's index.js it fetches
// the user token with
//   fetch(base + '/chat/user/' + name + '/token').then(res => res.text())
// and, as a Chat client would on onTokenWillExpire, renews it with
// POST /chat/token/renew before handing it to renewToken. Errors come back as
// JSON {code, message} with a non-2xx status, never as a 200.
// Authentication, when the server wants it: the ID token the user got from
// the app's identity provider (chat-tokend's auth.jwt: then it answers only
// for that user), or an API key (never in a page served to the public).
// Query parameters: ?base=http://127.0.0.1:8090&user=alice&key=API_KEY&auto=1
//   &idp=URL    where to get an ID token (GET URL?sub=NAME -> {"id_token"}),
//               standing in for the app's OIDC login (a test identity provider)
//   &other=NAME then also ask for NAME's token, which an end user must be refused
'use strict';

const params = new URLSearchParams(window.location.search);
const $ = (id) => document.getElementById(id);

$('base').value = params.get('base') || 'http://localhost:8090';
$('username').value = params.get('user') || 'alice';
$('key').value = params.get('key') || '';
$('id-token').value = params.get('id_token') || '';

// The ID token, else an API key, else nothing (allow_unauthenticated is only
// for loopback); a header other than the CORS-safelisted ones needs a preflight.
function authHeaders() {
  const credential = $('id-token').value || $('key').value;
  return credential ? { Authorization: 'Bearer ' + credential } : {};
}

// What an app's OIDC library would hand over after the user logs in.
async function login(idp, name) {
  const res = await fetch(idp + '?sub=' + encodeURIComponent(name)).then(checked);
  $('id-token').value = (await res.json()).id_token;
}

// Non-2xx: read the JSON error and throw it.
async function checked(res) {
  if (res.ok) {
    return res;
  }
  let detail = res.statusText;
  try {
    const body = await res.json();
    detail = body.code + ': ' + body.message;
  } catch (e) {
    // not JSON: keep the status text
  }
  throw new Error('HTTP ' + res.status + ' ' + detail);
}

function fetchUserToken(base, name) {
  return fetch(base + '/chat/user/' + encodeURIComponent(name) + '/token', { headers: authHeaders() })
    .then(checked)
    .then((res) => res.text());
}

function renewToken(base, token) {
  return fetch(base + '/chat/token/renew', {
    method: 'POST',
    headers: Object.assign({ 'Content-Type': 'application/json' }, authHeaders()),
    body: JSON.stringify({ token: token, ttl_seconds: 600 }),
  })
    .then(checked)
    .then((res) => res.json());
}

async function run() {
  const base = $('base').value.replace(/\/+$/, '');
  const name = $('username').value;
  $('status').className = '';
  $('status').textContent = 'fetching';
  try {
    if (params.get('idp')) {
      await login(params.get('idp'), name);
    }
    const token = await fetchUserToken(base, name);
    $('user-token').textContent = token;
    $('status').textContent = 'renewing';
    const renewed = await renewToken(base, token);
    $('renewed-token').textContent = renewed.token;
    $('expire-time').textContent = renewed.expire_time;
    $('user-id').textContent = renewed.user_id;
    if (params.get('other')) {
      $('other-status').textContent = await fetchUserToken(base, params.get('other'))
        .then(() => 'got it', (e) => e.message);
    }
    $('status').textContent = 'done';
  } catch (e) {
    $('status').className = 'error';
    $('status').textContent = 'error: ' + e.message;
  }
}

$('form').addEventListener('submit', (event) => {
  event.preventDefault();
  run();
});
if (params.get('auto') === '1') {
  run();
}
