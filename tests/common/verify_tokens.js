// Checks tokens that chat-tokend returned (over gRPC, HTTP or through a
// client example) with the official npm builder `agora-token`, not with our
// own parser: a 007 token that parses, verifySignature with the expected
// certificate (and not with the ones that must fail), app id, exactly one
// Chat service with the user or app privilege, the user id (none in an app
// token), expire.
// stdin: {app_id, certificate, checks: [{token, kind: "app"|"user", user_id?,
//          ttl?, app_id?, certificate?, not_certificates?: [...],
//          one_of?: [certificates, any of which may have signed it]}]}
//        (app_id and certificate of a check override the top-level ones)
// stdout: [{issue_ts, expire, salt, user_id, privileges}] in the same order;
// exit 1 with a message naming the failing check otherwise.
// Run with NODE_PATH=<repo>/node_modules (tests/common/tokend.py does).
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { AccessToken2, ServiceChat, kChatServiceType } = require('agora-token/src/AccessToken2');

function check(input, c, index) {
  const where = `check ${index} (${c.kind}${c.user_id !== undefined ? ' ' + c.user_id : ''})`;
  const certificate = c.certificate || input.certificate;
  const appId = c.app_id || input.app_id;
  const token = new AccessToken2();
  assert.ok(typeof c.token === 'string' && c.token.startsWith('007'), `${where}: not a 007 token`);
  assert.ok(token.from_string(c.token), `${where}: agora-token cannot parse the token`);
  // one_of: the token may come from any of these (a call that raced a reload)
  const candidates = c.one_of || [certificate];
  assert.ok(candidates.some((cert) => token.verifySignature(cert)),
    `${where}: agora-token: the signature does not verify with the expected certificate`);
  for (const other of c.not_certificates || []) {
    assert.ok(!token.verifySignature(other), `${where}: the signature verifies with ${other.slice(0, 4)}...`);
  }
  assert.equal(token.appId.toString(), appId, `${where}: app id`);
  assert.equal(token.services.length, 1, `${where}: services other than Chat`);
  const chat = token.getServices(kChatServiceType);
  assert.equal(chat.length, 1, `${where}: exactly one Chat service`);
  const privilege = c.kind === 'app' ? ServiceChat.kPrivilegeApp : ServiceChat.kPrivilegeUser;
  const privileges = chat[0].__privileges;
  assert.deepEqual(Object.keys(privileges).map(Number), [privilege], `${where}: privilege`);
  const userId = chat[0].__user_id.toString();
  if (c.kind === 'app') {
    assert.equal(userId, '', `${where}: an app token carries no user id`);
  } else {
    assert.notEqual(userId, '', `${where}: a user token carries a user id`);
    if (c.user_id !== undefined) assert.equal(userId, c.user_id, `${where}: user id`);
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
  process.stdout.write(JSON.stringify(input.checks.map((c, i) => check(input, c, i))) + '\n');
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
}
