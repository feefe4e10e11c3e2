// Checks tokens that chat-tokend answered over HTTP with the official npm
// builder `agora-token` (not with our own parser): from_string,
// verifySignature with the app certificate (and not with another), app id,
// one Chat service with the expected privilege and user id.
// stdin: {"checks": [{token, app_id, certificate, kind: "app"|"user",
//          user_id?, not_certificate?}]}
// stdout: [{issue_ts, expire, user_id}]; exit 1 naming the failing check.
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { AccessToken2, ServiceChat, kChatServiceType } = require('agora-token/src/AccessToken2');

function check(c, index) {
  const where = `check ${index} (${c.kind}${c.user_id !== undefined ? ' ' + c.user_id : ''})`;
  const token = new AccessToken2();
  assert.ok(typeof c.token === 'string' && c.token.startsWith('007'), `${where}: not a 007 token`);
  assert.ok(token.from_string(c.token), `${where}: agora-token cannot parse the token`);
  assert.ok(token.verifySignature(c.certificate), `${where}: the signature does not verify`);
  if (c.not_certificate) {
    assert.ok(!token.verifySignature(c.not_certificate), `${where}: verifies with another certificate`);
  }
  assert.equal(token.appId.toString(), c.app_id, `${where}: app id`);
  const chat = token.getServices(kChatServiceType);
  assert.equal(token.services.length, 1, `${where}: services other than Chat`);
  assert.equal(chat.length, 1, `${where}: exactly one Chat service`);
  const privilege = c.kind === 'app' ? ServiceChat.kPrivilegeApp : ServiceChat.kPrivilegeUser;
  assert.deepEqual(Object.keys(chat[0].__privileges).map(Number), [privilege], `${where}: privilege`);
  const userId = chat[0].__user_id.toString();
  if (c.user_id !== undefined) {
    assert.equal(userId, c.user_id, `${where}: user id`);
  }
  return { issue_ts: token.issueTs, expire: token.expire, user_id: userId };
}

try {
  const input = JSON.parse(fs.readFileSync(0, 'utf8'));
  process.stdout.write(JSON.stringify(input.checks.map(check)) + '\n');
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
}
