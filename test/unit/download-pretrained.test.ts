/**
 * server/pretrained.ts against a local server standing in for Google Drive and the Hugging Face
 * hub: the checkpoint table (all categories × auc/pro/miou), downloadModels with and without
 * overwrite, the Drive confirmation page, the "too many accesses" refusal, and backbone weights
 * (HF_ENDPOINT, cache, local path, sha256 from the hub's LFS metadata, offline message).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DownloadError } from '../../server/download.js';
import {
  BackboneUnavailableError,
  backboneCachePath,
  CHECKPOINT_METRICS,
  downloadModels,
  DriveQuotaError,
  MVTEC_CATEGORIES,
  modelPath,
  parseDrivePage,
  RELEASE_PAGE,
  RELEASED_CHECKPOINTS,
  resolveBackboneWeights,
  type ModelProgress,
} from '../../server/pretrained.js';
import { sendFile, startServer, type TestServer } from './download-server.js';

const dir = mkdtempSync(join(tmpdir(), 'uflow-pretrained-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const T = { timeout: 5000 };
const NOPROXY = {};
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** a small file that starts like a legacy torch.save stream */
const ckpt = (seed: string) => Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.from(seed), randomBytes(3000)]);

type DriveMode = 'file' | 'confirm' | 'quota';

/** A fake Drive: /uc?id=… answers the file, a confirmation page (form → /download?…), or a quota page. */
async function fakeDrive(files: Map<string, Buffer>, mode: (id: string) => DriveMode): Promise<TestServer> {
  const srv: TestServer = await startServer((req, res, e) => {
    const u = new URL(req.url!, 'http://x');
    const id = u.searchParams.get('id') ?? '';
    const body = files.get(id);
    if (!body) {
      res.statusCode = 404;
      res.end();
      return;
    }
    if (u.pathname === '/uc') {
      const m = mode(id);
      if (m === 'file') return sendFile(req, res, e, body);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'set-cookie': `NID=abc${id.slice(0, 4)}; Path=/` });
      if (m === 'quota') {
        res.end(
          '<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body><div class="uc-main">' +
            '<p class="uc-error-caption">Sorry, you can&#39;t view or download this file at this time.</p>' +
            '<p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently. Please try accessing the file again later.</p></div></body></html>',
        );
      } else {
        res.end(
          `<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body><div class="uc-main"><p class="uc-warning-caption">Google Drive can't scan this file for viruses.</p>` +
            `<form id="download-form" action="${srv.base}/download" method="get"><input type="submit" id="uc-download-link" value="Download anyway"/>` +
            `<input type="hidden" name="id" value="${id}"><input type="hidden" name="export" value="download"><input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-${id.slice(0, 6)}"></form></div></body></html>`,
        );
      }
      return;
    }
    if (u.pathname === '/download' && u.searchParams.get('confirm') === 't' && u.searchParams.get('uuid') === `u-${id.slice(0, 6)}`) {
      return sendFile(req, res, e, body);
    }
    res.statusCode = 400;
    res.end('bad confirmation');
  });
  return srv;
}

describe('released U-Flow checkpoints', () => {
  test('the table: 15 categories × auc/pro/miou, distinct Drive ids', () => {
    assert.equal(MVTEC_CATEGORIES.length, 15);
    assert.deepEqual([...CHECKPOINT_METRICS].sort(), ['auc', 'miou', 'pro']);
    const ids = MVTEC_CATEGORIES.flatMap((c) => CHECKPOINT_METRICS.map((m) => RELEASED_CHECKPOINTS[c][m]));
    assert.equal(new Set(ids).size, 45);
    assert.ok(ids.every((id) => /^[\w-]{25,}$/.test(id)));
    assert.equal(RELEASED_CHECKPOINTS.bottle.miou, '1mf9_AggYGHVypWa5Tx3K1_oISn-0jP1w');
    assert.equal(modelPath('/r', 'miou', 'bottle'), join('/r', 'models', 'miou', 'bottle.ckpt'));
  });

  test('downloadModels fetches all three metrics, skips present files, refetches with overwrite', T, async () => {
    const files = new Map<string, Buffer>();
    for (const m of CHECKPOINT_METRICS) files.set(RELEASED_CHECKPOINTS.bottle[m], ckpt(`bottle-${m}`));
    const srv = await fakeDrive(files, () => 'file');
    try {
      const root = join(dir, 'overwrite');
      const present = ckpt('already-here');
      mkdirSync(join(root, 'models', 'auc'), { recursive: true });
      writeFileSync(modelPath(root, 'auc', 'bottle'), present);
      const events: ModelProgress[] = [];
      const r1 = await downloadModels({ categories: ['bottle'], root, driveBase: srv.base, env: NOPROXY, onProgress: (p) => events.push(p) });
      assert.deepEqual(
        r1.files.map((f) => [f.metric, f.skipped]),
        [
          ['auc', true],
          ['pro', false],
          ['miou', false],
        ],
      );
      assert.equal(r1.files[0]!.sha256, sha(present));
      for (const f of r1.files.slice(1)) {
        assert.equal(f.path, modelPath(root, f.metric, 'bottle'));
        assert.deepEqual(readFileSync(f.path), files.get(RELEASED_CHECKPOINTS.bottle[f.metric]));
        assert.equal(f.sha256, sha(readFileSync(f.path)));
      }
      assert.deepEqual(srv.log.map((l) => new URL(l.url, 'http://x').searchParams.get('id')), [RELEASED_CHECKPOINTS.bottle.pro, RELEASED_CHECKPOINTS.bottle.miou], 'the present file was not asked for');
      assert.ok(events.some((p) => p.metric === 'miou' && p.index === 3 && p.count === 3 && p.bytes === files.get(RELEASED_CHECKPOINTS.bottle.miou)!.length));

      const r2 = await downloadModels({ categories: ['bottle'], root, driveBase: srv.base, env: NOPROXY, overwrite: true });
      assert.ok(r2.files.every((f) => !f.skipped));
      assert.deepEqual(readFileSync(modelPath(root, 'auc', 'bottle')), files.get(RELEASED_CHECKPOINTS.bottle.auc), 'refetched over the present file');
      assert.equal(srv.log.length, 5);
    } finally {
      await srv.close();
    }
  });

  test('the Drive confirmation page is followed (form, hidden inputs, cookie)', T, async () => {
    const files = new Map([[RELEASED_CHECKPOINTS.carpet.pro, ckpt('carpet-pro')]]);
    const srv = await fakeDrive(files, () => 'confirm');
    try {
      const root = join(dir, 'confirm');
      const r = await downloadModels({ categories: ['carpet'], metrics: ['pro'], root, driveBase: srv.base, env: NOPROXY });
      assert.deepEqual(readFileSync(r.files[0]!.path), files.get(RELEASED_CHECKPOINTS.carpet.pro));
      assert.equal(srv.log.length, 2);
      assert.match(srv.log[0]!.url, /^\/uc\?id=.*&export=download$/);
      assert.match(srv.log[1]!.url, /^\/download\?id=.*confirm=t&uuid=/);
      assert.match(srv.log[1]!.cookie ?? '', /NID=abc/);
    } finally {
      await srv.close();
    }
  });

  test('"too many accesses": a clear message with the by-hand route and the exact folder; fetched files kept', T, async () => {
    const files = new Map<string, Buffer>();
    for (const m of CHECKPOINT_METRICS) files.set(RELEASED_CHECKPOINTS.grid[m], ckpt(`grid-${m}`));
    const srv = await fakeDrive(files, (id) => (id === RELEASED_CHECKPOINTS.grid.auc ? 'file' : 'quota'));
    try {
      const root = join(dir, 'quota');
      await assert.rejects(downloadModels({ categories: ['grid'], root, driveBase: srv.base, env: NOPROXY }), (e: unknown) => {
        assert.ok(e instanceof DriveQuotaError, String(e));
        const msg = e.message;
        assert.match(msg, /too many accesses/);
        assert.match(msg, /Too many users have viewed or downloaded this file recently/);
        assert.ok(msg.includes(RELEASE_PAGE), 'names the GitHub release');
        assert.ok(msg.includes(`https://drive.google.com/uc?id=${RELEASED_CHECKPOINTS.grid.pro}&export=download`), 'names the public Drive URL');
        assert.ok(msg.includes(join(root, 'models', '<metric>', '<category>.ckpt')), 'names the folder layout');
        assert.ok(msg.includes(modelPath(root, 'pro', 'grid')) && msg.includes(modelPath(root, 'miou', 'grid')), 'lists what is still missing');
        assert.ok(!msg.includes(modelPath(root, 'auc', 'grid')), 'not the file already fetched');
        return true;
      });
      assert.ok(existsSync(modelPath(root, 'auc', 'grid')));
      assert.ok(!existsSync(modelPath(root, 'pro', 'grid')) && !existsSync(`${modelPath(root, 'pro', 'grid')}.part`));
    } finally {
      await srv.close();
    }
  });

  test('unknown categories are refused before any request', async () => {
    await assert.rejects(downloadModels({ categories: ['bottle', 'cats'], root: dir, driveBase: 'http://127.0.0.1:9' }), /unknown category 'cats': released models exist for bottle, cable/);
  });

  test('parseDrivePage: older link form, downloadUrl, unknown pages', () => {
    const p1 = parseDrivePage('<a id="uc-download-link" href="/uc?export=download&amp;confirm=AbCd&amp;id=XYZ">Download anyway</a>', 'https://drive.google.com/uc?id=XYZ&export=download');
    assert.deepEqual(p1, { kind: 'confirm', url: 'https://drive.google.com/uc?export=download&confirm=AbCd&id=XYZ' });
    const p2 = parseDrivePage('{"downloadUrl":"https://drive.usercontent.google.com/download?id\\u003dXYZ\\u0026export\\u003ddownload"}', 'https://drive.google.com/uc');
    assert.deepEqual(p2, { kind: 'confirm', url: 'https://drive.usercontent.google.com/download?id=XYZ&export=download' });
    assert.equal(parseDrivePage('<html><body>Sign in</body></html>', 'https://drive.google.com/uc').kind, 'unknown');
    assert.equal(parseDrivePage('<html><body><p>Access denied: too many accesses</p></body></html>', 'https://x').kind, 'quota');
  });

  test('a page the tool does not understand: an error with the by-hand route, nothing saved', T, async () => {
    const id = RELEASED_CHECKPOINTS.wood.auc;
    const srv = await startServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html><body>Sign in to continue</body></html>');
    });
    try {
      const root = join(dir, 'unknown-page');
      await assert.rejects(
        downloadModels({ categories: ['wood'], metrics: ['auc'], root, driveBase: srv.base, env: NOPROXY }),
        (e: unknown) => e instanceof DownloadError && /does not understand/.test(e.message) && e.message.includes(modelPath(root, 'auc', 'wood')) && e.message.includes(id),
      );
      assert.ok(!existsSync(modelPath(root, 'auc', 'wood')));
    } finally {
      await srv.close();
    }
  });
});

describe('backbone weights from the Hugging Face hub', () => {
  const weights = randomBytes(10_000);
  /** a fake hub: HEAD/GET /<repo>/resolve/main/model.safetensors → 302 to a blob store, with LFS metadata */
  const fakeHub = (etag: string) =>
    startServer((req, res, e) => {
      const m = /^\/(timm\/[^/]+)\/resolve\/main\/model\.safetensors$/.exec(req.url!);
      if (m) {
        res.writeHead(302, { location: `/blobs/${encodeURIComponent(m[1]!)}`, 'x-linked-etag': `"${etag}"`, 'x-linked-size': String(weights.length), etag: '"not-the-sha"' });
        res.end();
        return;
      }
      if (req.url!.startsWith('/blobs/')) return sendFile(req, res, e, weights);
      res.statusCode = 404;
      res.end();
    });

  test('HF_ENDPOINT override, cache, then a cache hit without network', T, async () => {
    const srv = await fakeHub(sha(weights));
    const saved = process.env.HF_ENDPOINT;
    process.env.HF_ENDPOINT = srv.base;
    try {
      const cacheDir = join(dir, 'cache1');
      const r = await resolveBackboneWeights('cait_s24_224', { cacheDir, env: { ...NOPROXY, HF_ENDPOINT: process.env.HF_ENDPOINT } });
      assert.equal(r.source, 'download');
      assert.equal(r.path, backboneCachePath('cait_s24_224', cacheDir));
      assert.ok(r.path.endsWith(join('hub', 'timm--cait_s24_224.fb_dist_in1k', 'model.safetensors')));
      assert.equal(r.url, `${srv.base}/timm/cait_s24_224.fb_dist_in1k/resolve/main/model.safetensors`);
      assert.equal(r.sha256, sha(weights));
      assert.deepEqual(readFileSync(r.path), weights);
      const n = srv.log.length;
      // default env: process.env.HF_ENDPOINT is read (the machine's proxy variables, if any, exempt loopback via NO_PROXY below)
      const prevNoProxy = process.env.NO_PROXY;
      process.env.NO_PROXY = '127.0.0.1';
      try {
        const r2 = await resolveBackboneWeights('resnet18', { cacheDir });
        assert.equal(r2.source, 'download');
        assert.ok(srv.log.slice(n).some((l) => l.url.startsWith('/timm/resnet18.a1_in1k/')));
      } finally {
        if (prevNoProxy === undefined) delete process.env.NO_PROXY;
        else process.env.NO_PROXY = prevNoProxy;
      }
      const m = srv.log.length;
      const r3 = await resolveBackboneWeights('cait_s24_224', { cacheDir });
      assert.equal(r3.source, 'cache');
      assert.equal(srv.log.length, m, 'no request for a cached file');
    } finally {
      if (saved === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = saved;
      await srv.close();
    }
  });

  test('a local path replaces any download', T, async () => {
    const local = join(dir, 'my-wrn.safetensors');
    writeFileSync(local, weights);
    const r = await resolveBackboneWeights('wide_resnet50_2', { localPath: local, cacheDir: join(dir, 'cache-unused'), endpoint: 'http://127.0.0.1:9' });
    assert.deepEqual(r, { path: local, source: 'local' });
    await assert.rejects(resolveBackboneWeights('wide_resnet50_2', { localPath: join(dir, 'nope.safetensors') }), /nope\.safetensors: no such file/);
  });

  test('the hub sha256 is checked: a corrupt transfer is rejected and removed', T, async () => {
    const srv = await fakeHub('0'.repeat(64));
    try {
      const cacheDir = join(dir, 'cache2');
      await assert.rejects(resolveBackboneWeights('cait_m48_448', { cacheDir, endpoint: srv.base, env: NOPROXY }), (e: unknown) => e instanceof DownloadError && e.kind === 'checksum');
      assert.ok(!existsSync(backboneCachePath('cait_m48_448', cacheDir)));
    } finally {
      await srv.close();
    }
  });

  test('offline: the message names the URL to fetch by hand and where to put it', T, async () => {
    const srv = await startServer(() => {});
    const endpoint = srv.base;
    await srv.close();
    const cacheDir = join(dir, 'cache3');
    await assert.rejects(resolveBackboneWeights('deit_base_distilled_patch16_384', { cacheDir, endpoint, env: NOPROXY }), (e: unknown) => {
      assert.ok(e instanceof BackboneUnavailableError, String(e));
      assert.ok(e.message.includes(`${endpoint}/timm/deit_base_distilled_patch16_384.fb_in1k/resolve/main/model.safetensors`));
      assert.ok(e.message.includes(backboneCachePath('deit_base_distilled_patch16_384', cacheDir)));
      assert.match(e.message, /local copy/);
      return true;
    });
  });

  test('unknown backbone names are refused; timm tags and repo ids pass through', async () => {
    await assert.rejects(resolveBackboneWeights('vgg', { cacheDir: dir }), /unknown backbone 'vgg'/);
    assert.ok(backboneCachePath('resnet18.tv_in1k', '/c').endsWith(join('hub', 'timm--resnet18.tv_in1k', 'model.safetensors')));
    assert.ok(backboneCachePath('org/model', '/c').endsWith(join('hub', 'org--model', 'model.safetensors')));
  });
});
