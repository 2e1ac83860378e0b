/**
 * The backbone that ships with U-Flow: `mobilenet_v2`, the ImageNet MobileNetV2 with width 0.35
 * (Keras Applications weights, Apache-2.0, 1.6 MB; assets/backbones/mobilenet_v2_035_imagenet,
 * copied beside the bundles as dist/backbones/… by esbuild.mjs). The name implies everything a
 * `tfjs:<dir>` config spells out: its folder, its taps (block_2_add, block_5_add, block_12_add at
 * strides 4, 8, 16) and its input range [-1, 1].
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MOBILENET_V2_TAPS } from './tfjs-layers.js';

export const BUNDLED_MOBILENET = 'mobilenet_v2';
export const BUNDLED_MOBILENET_FOLDER = 'mobilenet_v2_035_imagenet';
/** The size the configs use it at (configs/mobilenet-*.yaml): 256, levels 64², 32², 16². */
export const BUNDLED_MOBILENET_INPUT = 256;
export const BUNDLED_MOBILENET_LAYERS: readonly string[] = MOBILENET_V2_TAPS;
export const BUNDLED_MOBILENET_RANGE = [-1, 1] as const;

/**
 * The folder of the bundled model: beside the bundle (dist/backbones/…), or in the source tree
 * (assets/backbones/…) when running from TypeScript. Throws, naming the places looked at, when
 * neither holds it (a build that skipped esbuild.mjs's copy).
 */
export function bundledBackboneDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/cli.js, dist/server.js (and the .vsix's dist/): dist/backbones/…; models/backbones/bundled.ts: assets/backbones/….
  const candidates = [join(here, 'backbones', BUNDLED_MOBILENET_FOLDER), join(here, '..', '..', 'assets', 'backbones', BUNDLED_MOBILENET_FOLDER)];
  for (const c of candidates) if (existsSync(join(c, 'model.json'))) return c;
  throw new Error(`the bundled backbone ${BUNDLED_MOBILENET} is missing (looked in ${candidates.join(', ')}): rebuild with \`node esbuild.mjs\`, which copies assets/backbones into dist/`);
}
