/**
 * Small SVG building blocks and the SVG → PNG step (sharp renders SVG with librsvg, text with the
 * system's fonts through fontconfig). Charts and the prediction grid both draw with these.
 */
import {writeFile} from 'node:fs/promises';

import sharp from 'sharp';

import {ExitCode, UserError} from '../cli/errors.js';

/** DejaVu Sans first: it is on every Debian/Ubuntu machine, so labels look the same everywhere. */
export const FONT_FAMILY = "'DejaVu Sans', 'Liberation Sans', Arial, sans-serif";

export function escapeXml(value: string): string {
  return value.replace(/[<>&'"]/g, (c) => ({'<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;'})[c]!);
}

/** Rounded for compact markup; sub-pixel precision beyond 0.01 does not show. */
export function num(value: number): string {
  return String(Math.round(value * 100) / 100);
}

export interface TextOptions {
  size: number;
  fill?: string;
  anchor?: 'start' | 'middle' | 'end';
  weight?: 'normal' | 'bold';
  /** Degrees, about (x, y): -90 for a y-axis label. */
  rotate?: number;
}

export function svgText(x: number, y: number, content: string, options: TextOptions): string {
  const rotate = options.rotate ? ` transform="rotate(${options.rotate} ${num(x)} ${num(y)})"` : '';
  return (
    `<text x="${num(x)}" y="${num(y)}" font-family="${FONT_FAMILY}" font-size="${options.size}" fill="${options.fill ?? '#222'}"` +
    ` text-anchor="${options.anchor ?? 'start'}" font-weight="${options.weight ?? 'normal'}"${rotate}>${escapeXml(content)}</text>`
  );
}

export function svgDocument(width: number, height: number, body: string, background?: string): string {
  const bg = background ? `<rect width="${width}" height="${height}" fill="${background}"/>` : '';
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${bg}${body}</svg>`;
}

/** An SVG document → PNG bytes (RGB: charts have an opaque background). */
export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).flatten({background: '#ffffff'}).png().toBuffer();
}

/** Writes a rendered figure; a bad output path is one clear line. */
export async function writeImage(out: string, bytes: Buffer): Promise<void> {
  try {
    await writeFile(out, bytes);
  } catch (error) {
    throw new UserError(`cannot write ${out}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      exitCode: ExitCode.failure,
      suggestion: 'check that its folder exists and is writable',
    });
  }
}
