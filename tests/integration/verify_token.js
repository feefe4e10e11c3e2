// Checks tokens that chat-tokend returned with the official npm builder
// `agora-token`, not with our own parser: parse, verifySignature with the
// expected certificate (and not with the ones that must fail), app id, one
// Chat service with the user or app privilege, user id, expire.
// stdin: {"checks": [{token, app_id, certificate, kind: "app"|"user",
//          user_id?, ttl?, not_certificates?: [...]}]}
// stdout: [{issue_ts, expire, salt, user_id, privileges}] in the same order;
// exit 1 with a message naming the failing check otherwise.
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { AccessToken2, ServiceChat, kChatServiceType } = require('agora-token/src/AccessToken2');

function check(c, index) {
  const where = `check ${index} (${c.kind}${c.user_id !== undefined ? ' ' + c.user_id : ''})`;
  const token = new AccessToken2();
  assert.ok(token.from_string(c.token), `${where}: agora-token cannot parse the token`);
  assert.ok(token.verifySignature(c.certificate),
    `${where}: agora-token: the signature does not verify with the expected certificate`);
  for (const other of c.not_certificates || []) {
    assert.ok(!token.verifySignature(other), `${where}: the signature verifies with ${other.slice(0, 4)}...`);
  }
  assert.equal(token.appId.toString(), c.app_id, `${where}: app id`);
  assert.equal(token.services.length, 1, `${where}: services other than Chat`);
  const chat = token.getServices(kChatServiceType);
  assert.equal(chat.length, 1, `${where}: exactly one Chat service`);
  const privilege = c.kind === 'app' ? ServiceChat.kPrivilegeApp : ServiceChat.kPrivilegeUser;
  const privileges = chat[0].__privileges;
  assert.deepEqual(Object.keys(privileges).map(Number), [privilege], `${where}: privilege`);
  const userId = chat[0].__user_id.toString();
  if (c.kind === 'app') {
    assert.equal(userId, '', `${where}: an app token carries no user id`);
  } else if (c.user_id !== undefined) {
    assert.equal(userId, c.user_id, `${where}: user id`);
  }
  if (c.ttl !== undefined) {
    assert.equal(token.expire, c.ttl, `${where}: token expire`);
    assert.equal(privileges[privilege], c.ttl, `${where}: privilege expire`);
  }
  return { issue_ts: token.issueTs, expire: token.expire, salt: token.salt, user_id: userId,
    privileges };
}

const input = JSON.parse(fs.readFileSync(0, 'utf8'));
try {
  process.stdout.write(JSON.stringify(input.checks.map(check)) + '\n');
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
}
