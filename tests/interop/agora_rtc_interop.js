// RTC and RTM tokens, interop both ways with the official npm builder
// `agora-token`: tokens our CLI builds hold byte for byte the payload its
// AccessToken2 builds from the same inputs (salt and issue time fixed), parse
// and verify there with equal fields; tokens its RtcTokenBuilder /
// RtmTokenBuilder build parse and verify with our CLI (inspect + verify).
// Usage: node agora_rtc_interop.js path/to/chat-token
'use strict';
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');
const { execFileSync, spawnSync } = require('node:child_process');
const { AccessToken2, ServiceRtc, ServiceRtm, kRtcServiceType, kRtmServiceType } =
  require('agora-token/src/AccessToken2');
const { RtcTokenBuilder, RtcRole, RtmTokenBuilder } = require('agora-token');

const cli = process.argv[2];
assert.ok(cli, 'usage: node agora_rtc_interop.js CHAT_TOKEN_BINARY');
const ROUNDS = 100;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-rtc-interop-'));
const certFile = path.join(dir, 'cert');

const hex32 = () => crypto.randomBytes(16).toString('hex');
// Agora's channel-name / account alphabet
const RTC_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#$%&()+-:;<=.>?@[]^_{|}~,';
const RTM_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789_-.@';
const randomString = (alphabet, min, max) => {
  const n = min + crypto.randomInt(max - min + 1);
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[crypto.randomInt(alphabet.length)];
  return s;
};
const payload = (token) => zlib.inflateSync(Buffer.from(token.slice(3), 'base64'));

function ourBuild(args, cert) {
  fs.writeFileSync(certFile, cert + '\n', { mode: 0o600 });
  return execFileSync(cli, ['build', ...args, '--app-cert-file', certFile], { encoding: 'utf8' }).trim();
}

function ourCheck(token, cert) {
  fs.writeFileSync(certFile, cert + '\n', { mode: 0o600 });
  const good = spawnSync(cli, ['verify', '-', '--app-cert-file', certFile], { input: token + '\n', encoding: 'utf8' });
  assert.equal(good.status, 0, `our verify refused an agora-token token: ${good.stdout}${good.stderr}`);
  fs.writeFileSync(certFile, hex32() + '\n', { mode: 0o600 });
  const bad = spawnSync(cli, ['verify', '-', '--app-cert-file', certFile], { input: token + '\n', encoding: 'utf8' });
  assert.equal(bad.status, 1, 'our verify accepted a wrong certificate');
  return JSON.parse(execFileSync(cli, ['inspect', token], { encoding: 'utf8' }));
}

const privilegeMap = (privileges) => Object.fromEntries(privileges.map((p) => [p.privilege, p.expire]));
let checked = 0;

// 1. ours -> agora-token: RTC (uid, account, with RTM) and RTM tokens
for (let i = 0; i < ROUNDS; i++) {
  const appId = hex32();
  const cert = hex32();
  const salt = 1 + crypto.randomInt(99999999);
  const issueTs = 1500000000 + crypto.randomInt(400000000);
  const ttl = 1 + crypto.randomInt(86400);
  const reference = new AccessToken2(appId, cert, issueTs, ttl);
  reference.salt = salt;
  let args;
  if (i % 4 === 3) {
    const user = randomString(RTM_ALPHABET, 1, 64);
    args = ['rtm', '--user', user];
    const rtm = new ServiceRtm(user);
    rtm.add_privilege(ServiceRtm.kPrivilegeLogin, ttl);
    reference.add_service(rtm);
  } else {
    const channel = randomString(RTC_ALPHABET, 1, 64);
    const publisher = crypto.randomInt(2) === 0;
    const pttl = 1 + crypto.randomInt(86400);
    const withRtm = i % 4 === 2;
    let account;
    if (i % 4 === 0) {
      const uid = i % 8 === 0 ? 0 : crypto.randomInt(2 ** 32);
      args = ['rtc', '--uid', String(uid)];
      account = uid === 0 ? '' : String(uid);
    } else {
      account = withRtm ? randomString(RTM_ALPHABET, 1, 64) : randomString(RTC_ALPHABET, 0, 255);
      args = ['rtc', '--account', account];
    }
    args.push('--channel', channel, '--role', publisher ? 'publisher' : 'subscriber', '--privilege-ttl', String(pttl));
    if (withRtm) args.push('--with-rtm');
    const rtc = new ServiceRtc(channel, account);
    rtc.add_privilege(ServiceRtc.kPrivilegeJoinChannel, pttl);
    if (publisher) {
      rtc.add_privilege(ServiceRtc.kPrivilegePublishAudioStream, pttl);
      rtc.add_privilege(ServiceRtc.kPrivilegePublishVideoStream, pttl);
      rtc.add_privilege(ServiceRtc.kPrivilegePublishDataStream, pttl);
    }
    reference.add_service(rtc);
    if (withRtm) {
      const rtm = new ServiceRtm(account);
      rtm.add_privilege(ServiceRtm.kPrivilegeLogin, ttl);
      reference.add_service(rtm);
    }
  }
  const token = ourBuild([...args, '--app-id', appId, '--ttl', String(ttl), '--salt', String(salt),
    '--issue-ts', String(issueTs)], cert);
  assert.deepEqual(payload(token), payload(reference.build()), `payload differs for ${args.join(' ')}`);
  const parsed = new AccessToken2();
  assert.ok(parsed.from_string(token), `agora-token cannot parse our token ${token}`);
  assert.ok(parsed.verifySignature(cert), 'agora-token refuses our signature');
  assert.ok(!parsed.verifySignature(hex32()), 'agora-token accepts a wrong certificate');
  assert.equal(parsed.expire, ttl);
  checked++;
}

// 2. agora-token -> ours: every RTC builder and the RTM builder
for (let i = 0; i < ROUNDS; i++) {
  const appId = hex32();
  const cert = hex32();
  const channel = randomString(RTC_ALPHABET, 1, 64);
  const ttl = 1 + crypto.randomInt(86400);
  const pttl = 1 + crypto.randomInt(86400);
  const role = crypto.randomInt(2) === 0 ? RtcRole.PUBLISHER : RtcRole.SUBSCRIBER;
  const account = randomString(RTM_ALPHABET, 1, 64);
  const uid = crypto.randomInt(2 ** 32);
  let token;
  let expect;
  switch (i % 4) {
  case 0:
    token = RtcTokenBuilder.buildTokenWithUid(appId, cert, channel, uid, role, ttl, pttl);
    expect = { rtc: [channel, uid === 0 ? '' : String(uid)] };
    break;
  case 1:
    token = RtcTokenBuilder.buildTokenWithUserAccount(appId, cert, channel, account, role, ttl, pttl);
    expect = { rtc: [channel, account] };
    break;
  case 2:
    token = RtcTokenBuilder.buildTokenWithRtm(appId, cert, channel, account, role, ttl, pttl);
    expect = { rtc: [channel, account], rtm: account };
    break;
  default:
    token = RtmTokenBuilder.buildToken(appId, cert, account, ttl);
    expect = { rtm: account };
  }
  const info = ourCheck(token, cert);
  assert.equal(info.app_id, appId);
  assert.equal(info.expire, ttl);
  const byType = Object.fromEntries(info.services.map((s) => [s.name, s]));
  assert.equal(info.services.length, Object.keys(expect).length);
  if (expect.rtc) {
    const rtc = byType.rtc;
    assert.equal(rtc.type, kRtcServiceType);
    assert.deepEqual([rtc.fields.channel_name, rtc.fields.uid], expect.rtc);
    const want = { 1: pttl };
    if (role === RtcRole.PUBLISHER) Object.assign(want, { 2: pttl, 3: pttl, 4: pttl });
    assert.deepEqual(privilegeMap(rtc.privileges), want);
  }
  if (expect.rtm) {
    const rtm = byType.rtm;
    assert.equal(rtm.type, kRtmServiceType);
    assert.equal(rtm.fields.user_id, expect.rtm);
    assert.deepEqual(privilegeMap(rtm.privileges), { 1: ttl });
  }
  checked++;
}

// 3. the public vector, through agora-token
const vector = ourBuild(['rtc', '--app-id', '970CA35de60c44645bbae8a215061b33', '--channel',
  '7d72365eb983485397e3e3f9d460bdda', '--uid', '2882341273', '--role', 'subscriber', '--ttl', '600',
  '--salt', '1', '--issue-ts', '1111111'], '5CFd2fd1755d40ecb72977518be15d3b');
assert.equal(vector, '007eJxTYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxgDCaiTj');

// 4. Agora's limits, refused by the CLI with exit 2 and the rule named
fs.writeFileSync(certFile, hex32() + '\n', { mode: 0o600 });
for (const [args, message] of [
  [['rtc', '--channel', 'a/b', '--uid', '1', '--role', 'publisher'], /channel_name may hold only/],
  [['rtc', '--channel', 'c'.repeat(65), '--uid', '1', '--role', 'publisher'], /at most 64 bytes/],
  [['rtc', '--channel', 'c', '--account', 'a'.repeat(256), '--role', 'publisher'], /at most 255 bytes/],
  [['rtc', '--channel', 'c', '--uid', '0', '--role', 'publisher', '--with-rtm'], /user_id must be 1\.\.64 bytes/],
  [['rtc', '--channel', 'c', '--uid', '1'], /needs --channel, --role/],
  [['rtc', '--channel', 'c', '--uid', '1', '--account', 'a', '--role', 'publisher'], /one of --uid or --account/],
  [['rtc', '--channel', 'c', '--uid', '1', '--role', 'admin'], /--role must be publisher or subscriber/],
  [['rtm', '--user', 'two words'], /printable ASCII without space/],
  [['rtm'], /needs --user/],
]) {
  const r = spawnSync(cli, ['build', ...args, '--app-id', hex32(), '--app-cert-file', certFile], { encoding: 'utf8' });
  assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}`);
  assert.match(r.stderr, message);
  assert.equal(r.stdout, '');
}

fs.rmSync(dir, { recursive: true, force: true });
console.log(`interop: ${checked} RTC/RTM tokens checked both ways with agora-token`);
