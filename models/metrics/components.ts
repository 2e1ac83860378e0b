/**
 * Connected components of binary masks, 8-connectivity, per image, labels 1..R unique over the
 * whole set and numbered in raster order of each component's first pixel (what scipy.ndimage.label
 * and cv2.connectedComponents give, image after image). 0 is background; a pixel is foreground
 * when its mask value is non-zero.
 */
export interface Components {
  labels: Int32Array;
  count: number;
  /** Pixel count of label r at sizes[r] (sizes[0] = background). */
  sizes: Int32Array;
}

export function label8(mask: ArrayLike<number>, n: number, h: number, w: number): Components {
  const per = h * w;
  if (mask.length !== n * per) throw new RangeError(`label8: ${mask.length} values for ${n}×${h}×${w}`);
  const labels = new Int32Array(n * per);
  const stack = new Int32Array(per);
  const sizes: number[] = [0];
  let next = 0;
  for (let b = 0; b < n; b++) {
    const o = b * per;
    for (let p = 0; p < per; p++) {
      if (mask[o + p] === 0 || labels[o + p] !== 0) continue;
      const lab = ++next;
      let size = 0;
      let top = 0;
      stack[top++] = p;
      labels[o + p] = lab;
      while (top > 0) {
        const q = stack[--top]!;
        size++;
        const y = (q / w) | 0;
        const x = q - y * w;
        for (let dy = -1; dy <= 1; dy++) {
          const yy = y + dy;
          if (yy < 0 || yy >= h) continue;
          for (let dx = -1; dx <= 1; dx++) {
            const xx = x + dx;
            if (xx < 0 || xx >= w || (dx === 0 && dy === 0)) continue;
            const r = yy * w + xx;
            if (mask[o + r] !== 0 && labels[o + r] === 0) {
              labels[o + r] = lab;
              stack[top++] = r;
            }
          }
        }
      }
      sizes.push(size);
    }
  }
  let fg = 0;
  for (let r = 1; r < sizes.length; r++) fg += sizes[r]!;
  sizes[0] = n * per - fg;
  return { labels, count: next, sizes: Int32Array.from(sizes) };
}
