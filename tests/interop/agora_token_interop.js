// Interop both ways with the official npm builder `agora-token` (2.0.6):
// tokens our CLI builds parse and verify there with equal fields, and tokens
// it builds parse and verify with our CLI (inspect + verify).
// Usage: node agora_token_interop.js path/to/chat-token
'use strict';
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');
const { AccessToken2, ServiceChat, kChatServiceType } = require('agora-token/src/AccessToken2');
const { ChatTokenBuilder } = require('agora-token');

const cli = process.argv[2];
assert.ok(cli, 'usage: node agora_token_interop.js CHAT_TOKEN_BINARY');
const ROUNDS = 200;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-interop-'));
const certFile = path.join(dir, 'cert');

const hex32 = () => {
  // random case, as either case is valid
  const h = crypto.randomBytes(16).toString('hex');
  return [...h].map((c) => (Math.random() < 0.5 ? c.toUpperCase() : c)).join('');
};
const randomUser = () => {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789_-.';
  const n = 1 + crypto.randomInt(64);
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[crypto.randomInt(alphabet.length)];
  return s;
};

function ourBuild(kind, appId, cert, user, ttl, salt, issueTs) {
  fs.writeFileSync(certFile, cert + '\n', { mode: 0o600 });
  const args = ['build', kind, '--app-id', appId, '--app-cert-file', certFile, '--ttl', String(ttl),
    '--salt', String(salt), '--issue-ts', String(issueTs)];
  if (user !== null) args.push('--user', user);
  return execFileSync(cli, args, { encoding: 'utf8' }).trim();
}

function ourVerify(token, cert) {
  fs.writeFileSync(certFile, cert + '\n', { mode: 0o600 });
  return spawnSync(cli, ['verify', '-', '--app-cert-file', certFile], { input: token + '\n', encoding: 'utf8' });
}

function ourInspect(token) {
  return JSON.parse(execFileSync(cli, ['inspect', token], { encoding: 'utf8' }));
}

let checked = 0;

// 1. ours -> agora-token
for (let i = 0; i < ROUNDS; i++) {
  const appId = hex32();
  const cert = hex32();
  const isUser = i % 2 === 0;
  const user = isUser ? randomUser() : null;
  const ttl = 1 + crypto.randomInt(86400);
  const salt = 1 + crypto.randomInt(99999999);
  const issueTs = 1500000000 + crypto.randomInt(400000000);
  const token = ourBuild(isUser ? 'user' : 'app', appId, cert, user, ttl, salt, issueTs);

  const parsed = new AccessToken2();
  assert.ok(parsed.from_string(token), `agora-token cannot parse our token ${token}`);
  assert.ok(parsed.verifySignature(cert), 'agora-token refuses our signature');
  assert.ok(!parsed.verifySignature(hex32()), 'agora-token accepts a wrong certificate');
  assert.equal(parsed.appId.toString(), appId);
  assert.equal(parsed.issueTs, issueTs);
  assert.equal(parsed.expire, ttl);
  assert.equal(parsed.salt, salt);
  const chat = parsed.getServices(kChatServiceType);
  assert.equal(parsed.services.length, 1);
  assert.equal(chat.length, 1);
  assert.equal(chat[0].__user_id.toString(), isUser ? user : '');
  const privilege = isUser ? ServiceChat.kPrivilegeUser : ServiceChat.kPrivilegeApp;
  assert.deepEqual(chat[0].__privileges, { [privilege]: ttl });
  checked++;
}

// 2. agora-token -> ours
for (let i = 0; i < ROUNDS; i++) {
  const appId = hex32();
  const cert = hex32();
  const isUser = i % 2 === 0;
  const user = randomUser();
  const ttl = 1 + crypto.randomInt(86400);
  const token = isUser
    ? ChatTokenBuilder.buildUserToken(appId, cert, user, ttl)
    : ChatTokenBuilder.buildAppToken(appId, cert, ttl);
  assert.ok(token.startsWith('007'));

  const reference = new AccessToken2();
  assert.ok(reference.from_string(token));
  const info = ourInspect(token);
  assert.equal(info.version, '007');
  assert.equal(info.app_id, appId);
  assert.equal(info.issue_ts, reference.issueTs);
  assert.equal(info.expire, ttl);
  assert.equal(info.salt, reference.salt);
  assert.equal(info.expire_at, reference.issueTs + ttl);
  assert.equal(info.services.length, 1);
  const svc = info.services[0];
  assert.equal(svc.type, 5);
  assert.equal(svc.name, 'chat');
  assert.equal(svc.fields.user_id, isUser ? user : '');
  assert.equal(svc.privileges.length, 1);
  assert.equal(svc.privileges[0].name, isUser ? 'user' : 'app');
  assert.equal(svc.privileges[0].expire, ttl);

  const good = ourVerify(token, cert);
  assert.equal(good.status, 0, `our verify refused an agora-token token: ${good.stdout}${good.stderr}`);
  assert.match(good.stdout, /signature: ok/);
  const bad = ourVerify(token, hex32());
  assert.equal(bad.status, 1, 'our verify accepted a wrong certificate');
  assert.match(bad.stdout, /signature: invalid/);
  checked++;
}

// 3. the public vectors, through agora-token
const vectorCert = '5CFd2fd1755d40ecb72977518be15d3b';
const vectorUser = ourBuild('user', '970CA35de60c44645bbae8a215061b33', vectorCert, '2882341273', 600, 1, 1111111);
assert.equal(vectorUser, '007eJxTYNAIsnbS3v/A5t2TC6feR15r+6cq8bqAvfaW+tk/Vzz+p6xTYLA0N3B2NDZNSTUzSDYxMTMxTUpKTLVINDI0NTAzTDI2dv8iwBDBxMDAyADCrEDMCOZzMRhZWBgZmxgamRsDAB+lHrg=');
const v = new AccessToken2();
assert.ok(v.from_string(vectorUser) && v.verifySignature(vectorCert));

fs.rmSync(dir, { recursive: true, force: true });
console.log(`interop: ${checked} tokens checked both ways with agora-token`);
