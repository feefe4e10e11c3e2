// Checks tokens that the client examples printed with the official npm
// builder agora-token (not with our own parser): it must parse them, verify
// the signature with the app certificate, and find the app id, exactly one
// Chat service with the user or app privilege, the user id and the TTL.
// stdin: {app_id, certificate, checks: [{token, kind: "user"|"app", user_id?, ttl?}]}
// stdout: [{issue_ts, expire, user_id}] in order; exit 1 naming the failing
// check otherwise. Run with NODE_PATH=<repo>/node_modules.
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { AccessToken2, ServiceChat, kChatServiceType } = require('agora-token/src/AccessToken2');

function check(input, c, index) {
  const where = `token ${index} (${c.kind}${c.user_id !== undefined ? ' ' + c.user_id : ''})`;
  const token = new AccessToken2();
  assert.ok(typeof c.token === 'string' && c.token.startsWith('007'), `${where}: not a 007 token`);
  assert.ok(token.from_string(c.token), `${where}: agora-token cannot parse it`);
  assert.ok(token.verifySignature(input.certificate),
    `${where}: the signature does not verify with the app certificate`);
  assert.equal(token.appId.toString(), input.app_id, `${where}: app id`);
  assert.equal(token.services.length, 1, `${where}: services other than Chat`);
  const chat = token.getServices(kChatServiceType);
  assert.equal(chat.length, 1, `${where}: exactly one Chat service`);
  const privilege = c.kind === 'app' ? ServiceChat.kPrivilegeApp : ServiceChat.kPrivilegeUser;
  assert.deepEqual(Object.keys(chat[0].__privileges).map(Number), [privilege],
    `${where}: privilege`);
  const userId = chat[0].__user_id.toString();
  if (c.kind === 'app') {
    assert.equal(userId, '', `${where}: an app token carries no user id`);
  } else {
    assert.notEqual(userId, '', `${where}: a user token carries a user id`);
    if (c.user_id !== undefined) assert.equal(userId, c.user_id, `${where}: user id`);
  }
  if (c.ttl !== undefined) assert.equal(token.expire, c.ttl, `${where}: ttl`);
  return { issue_ts: token.issueTs, expire: token.expire, user_id: userId };
}

const input = JSON.parse(fs.readFileSync(0, 'utf8'));
try {
  process.stdout.write(JSON.stringify(input.checks.map((c, i) => check(input, c, i))) + '\n');
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
}
