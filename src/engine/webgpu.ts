/**
 * The `webgpu` compute backend: @tensorflow/tfjs-backend-webgpu on Dawn's Node binding (npm package
 * `webgpu`, a prebuilt dawn.node), over the vendor's Vulkan driver, or over Mesa's lavapipe (software
 * Vulkan) on machines without a GPU. See docs/gpu.md.
 *
 * Both packages are loaded by dynamic import with a computed specifier: their type declarations
 * (@webgpu/types) declare DOM-like globals that this Node project does not want in its type space,
 * and a machine where dawn.node cannot load must still run every other backend.
 */
import {execFileSync} from 'node:child_process';
import {existsSync, mkdtempSync, readdirSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

import * as tf from '@tensorflow/tfjs-core';

/** What the adapter says about itself, plus dtrain's verdict on whether it is real hardware. */
export interface GpuAdapterReport {
  /** A human name: the adapter's description, else its device, else vendor + architecture. */
  name: string;
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** WebGPU's `isFallbackAdapter` (Dawn sets it for CPU adapters such as lavapipe/SwiftShader). */
  fallback: boolean;
  /** false for software rasterisers (lavapipe, llvmpipe, SwiftShader, WARP) and fallback adapters. */
  hardware: boolean;
}

/** Why the webgpu backend cannot run here, and what to do about it. */
export type WebGpuProblem = 'binding' | 'no-loader' | 'mesa-too-old' | 'no-adapter' | 'device';

export class WebGpuUnavailable extends Error {
  constructor(
    message: string,
    readonly problem: WebGpuProblem,
    readonly fix: string,
    options: {cause?: unknown} = {},
  ) {
    super(message, options);
    this.name = 'WebGpuUnavailable';
  }
}

/** Minimal structural types for the parts of WebGPU dtrain touches (no DOM lib here). */
interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}
interface AdapterLike {
  info?: AdapterInfoLike;
  isFallbackAdapter?: boolean;
  features: {has(name: string): boolean};
  limits: Record<string, number>;
  requestDevice(descriptor?: unknown): Promise<DeviceLike>;
}
interface DeviceLike {
  destroy(): void;
  features: {has(name: string): boolean};
}
interface GpuLike {
  requestAdapter(options?: {powerPreference?: 'high-performance' | 'low-power'; forceFallbackAdapter?: boolean}): Promise<AdapterLike | null>;
}
interface DawnModule {
  create(options: string[]): GpuLike;
  globals: Record<string, unknown>;
}

const SOFTWARE_NAMES = /llvmpipe|lavapipe|softpipe|swiftshader|\bwarp\b|microsoft basic render/i;

/** Software adapters are never chosen automatically (they are for correctness checks, not speed). */
export function isSoftwareAdapter(info: {name?: string; vendor?: string; architecture?: string; device?: string; description?: string; fallback?: boolean}): boolean {
  if (info.fallback) return true;
  if (info.architecture?.toLowerCase() === 'software') return true;
  return [info.name, info.device, info.description].some((text) => text !== undefined && SOFTWARE_NAMES.test(text));
}

export function adapterReport(info: AdapterInfoLike, fallbackFlag = false): GpuAdapterReport {
  const vendor = info.vendor ?? '';
  const architecture = info.architecture ?? '';
  const device = info.device ?? '';
  const description = info.description ?? '';
  const fallback = Boolean(info.isFallbackAdapter ?? fallbackFlag);
  const name = description || device || [vendor, architecture].filter(Boolean).join(' ') || 'unnamed adapter';
  const report = {name, vendor, architecture, device, description, fallback, hardware: true};
  report.hardware = !isSoftwareAdapter(report);
  return report;
}

/** Mesa prints warnings about XDG_RUNTIME_DIR when it is unset: give it a private directory. */
function ensureRuntimeDir(): void {
  if (process.env.XDG_RUNTIME_DIR) return;
  try {
    process.env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'dtrain-xdg-'));
  } catch {
    // Only noise is at stake.
  }
}

let dawn: DawnModule | undefined;

/** Loads dawn.node (once) and installs the WebGPU globals (GPUBufferUsage, …) tfjs-webgpu uses. */
export async function loadDawn(): Promise<DawnModule> {
  if (dawn) return dawn;
  const specifier = 'webgpu';
  try {
    dawn = (await import(specifier)) as DawnModule;
  } catch (error) {
    const code = (error as {code?: string}).code;
    const missing = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
    throw new WebGpuUnavailable(
      missing ? 'the npm package `webgpu` (Dawn for Node) is not installed' : `Dawn's binding (webgpu/dist/${process.platform}-${process.arch}/dawn.node) does not load: ${(error as Error).message}`,
      'binding',
      missing ? 'reinstall dependencies with `npm ci`' : `the webgpu package ships dawn.node for linux-x64/arm64, darwin and win32 only, built against glibc; use another backend on ${process.platform}-${process.arch}`,
      {cause: error},
    );
  }
  for (const [name, value] of Object.entries(dawn.globals)) {
    if (!(name in globalThis)) (globalThis as Record<string, unknown>)[name] = value;
  }
  return dawn;
}

/** The Vulkan loader and drivers installed, to say why Dawn found no adapter. */
export interface VulkanInstall {
  loader: boolean;
  /** ICD manifests found (file names), e.g. lvp_icd.x86_64.json, nvidia_icd.json. */
  icds: string[];
  /** Version of the Debian package mesa-vulkan-drivers, when dpkg knows it. */
  mesaVersion?: string;
}

export function inspectVulkan(): VulkanInstall {
  const icds: string[] = [];
  for (const dir of ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d']) {
    try {
      icds.push(...readdirSync(dir).filter((f) => f.endsWith('.json')));
    } catch {
      // no such directory
    }
  }
  const libDirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu'];
  const loader = process.platform !== 'linux' || libDirs.some((d) => existsSync(join(d, 'libvulkan.so.1')));
  let mesaVersion: string | undefined;
  try {
    mesaVersion = execFileSync('dpkg-query', ['-W', '-f=${Version}', 'mesa-vulkan-drivers'], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']}).trim() || undefined;
  } catch {
    // not Debian, or not installed
  }
  return {loader, icds, mesaVersion};
}

/** Mesa's major version from a Debian version string ("25.0.7-2~bpo12+1" → 25, "22.3.6-1+deb12u1" → 22). */
export function mesaMajor(version: string | undefined): number | undefined {
  const match = version?.match(/^(?:\d+:)?(\d+)\./);
  return match ? Number(match[1]) : undefined;
}

const LAVAPIPE_FIX =
  'install a GPU driver with Vulkan support, or for a software device (CI) Mesa >= 24 lavapipe: on Debian bookworm add `deb http://deb.debian.org/debian bookworm-backports main` to /etc/apt/sources.list.d/, then `apt-get update && apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1` (docs/gpu.md)';

/** Turns "no adapter" into the most likely cause and its fix. */
export function diagnoseNoAdapter(vulkan: VulkanInstall, platform: NodeJS.Platform = process.platform): WebGpuUnavailable {
  if (platform === 'linux' && !vulkan.loader) {
    return new WebGpuUnavailable('no WebGPU adapter: the Vulkan loader libvulkan.so.1 is not installed', 'no-loader', LAVAPIPE_FIX);
  }
  const major = mesaMajor(vulkan.mesaVersion);
  const onlyMesa = vulkan.icds.length > 0 && vulkan.icds.every((f) => /^(lvp|radeon|intel|nouveau|freedreno|broadcom|panfrost|virtio|asahi|powervr)_icd/.test(f) || f.startsWith('intel_hasvk'));
  if (major !== undefined && major < 24 && (onlyMesa || vulkan.icds.length === 0)) {
    return new WebGpuUnavailable(
      `no WebGPU adapter: Mesa ${vulkan.mesaVersion} is too old for Dawn (lavapipe < 24 lacks shaderUniform*ArrayDynamicIndexing)`,
      'mesa-too-old',
      LAVAPIPE_FIX,
    );
  }
  if (vulkan.icds.length === 0) {
    return new WebGpuUnavailable('no WebGPU adapter: no Vulkan driver (ICD) is installed', 'no-adapter', LAVAPIPE_FIX);
  }
  const forced = process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES;
  if (forced) {
    return new WebGpuUnavailable(`no WebGPU adapter: the Vulkan loader is limited to ${forced} (VK_DRIVER_FILES / VK_ICD_FILENAMES)`, 'no-adapter', 'unset VK_DRIVER_FILES and VK_ICD_FILENAMES, or point them at an existing ICD manifest');
  }
  const nvidia = vulkan.icds.some((f) => f.startsWith('nvidia'));
  return new WebGpuUnavailable(
    `no WebGPU adapter although Vulkan drivers are installed (${vulkan.icds.join(', ')})`,
    'no-adapter',
    nvidia
      ? 'in a container, the NVIDIA runtime exposes Vulkan only with NVIDIA_DRIVER_CAPABILITIES including `graphics` (e.g. compute,utility,graphics); check `vulkaninfo --summary`'
      : 'check the driver with `vulkaninfo --summary` (package vulkan-tools); ' + LAVAPIPE_FIX,
  );
}

/** Adapters Dawn can see, from dawn.node's own listing (one GPU instance asked for a name that does not exist). */
export async function listAdapters(): Promise<string[]> {
  const {create} = await loadDawn();
  ensureRuntimeDir();
  try {
    const gpu = create(['adapter=dtrain-list-adapters-\u0001']);
    await gpu.requestAdapter();
  } catch (error) {
    const text = (error as Error).message;
    return [...text.matchAll(/^\s*\*\s*(.+)$/gm)].map((m) => m[1].trim());
  }
  return [];
}

/** dawn.node keeps Node alive while a GPU instance is referenced: all references live here. */
interface Live {
  gpu: GpuLike;
  adapter: AdapterLike;
  report: GpuAdapterReport;
  device?: DeviceLike;
}
let live: Live | undefined;

/** Finds the best adapter (high-performance); throws WebGpuUnavailable with the fix when none. */
export async function probeWebGpu(): Promise<GpuAdapterReport> {
  if (live) return live.report;
  const {create} = await loadDawn();
  ensureRuntimeDir();
  const gpu = create([]);
  let adapter: AdapterLike | null = null;
  try {
    adapter = await gpu.requestAdapter({powerPreference: 'high-performance'});
  } catch (error) {
    throw new WebGpuUnavailable(`requesting a WebGPU adapter failed: ${(error as Error).message}`, 'no-adapter', LAVAPIPE_FIX, {cause: error});
  }
  if (!adapter) throw diagnoseNoAdapter(inspectVulkan());
  const report = adapterReport(adapter.info ?? {}, Boolean(adapter.isFallbackAdapter));
  live = {gpu, adapter, report};
  return report;
}

let registered = false;

/**
 * Makes tfjs run on the adapter of probeWebGpu: installs navigator.gpu (tfjs-webgpu checks it),
 * registers the `webgpu` backend with a device made from that adapter, and sets it.
 */
export async function initWebGpuBackend(): Promise<GpuAdapterReport> {
  const report = await probeWebGpu();
  const state = live!;
  const nav = ((globalThis as {navigator?: Record<string, unknown>}).navigator ??= {});
  if (!('gpu' in nav) || nav.gpu !== state.gpu) {
    Object.defineProperty(nav, 'gpu', {value: state.gpu, configurable: true, enumerable: true, writable: true});
  }
  const specifier = '@tensorflow/tfjs-backend-webgpu';
  let WebGPUBackend: new (device: DeviceLike, info?: AdapterInfoLike) => tf.KernelBackend;
  try {
    ({WebGPUBackend} = (await import(specifier)) as {WebGPUBackend: typeof WebGPUBackend});
  } catch (error) {
    throw new WebGpuUnavailable(`@tensorflow/tfjs-backend-webgpu does not load: ${(error as Error).message}`, 'binding', 'reinstall dependencies with `npm ci`', {cause: error});
  }
  if (!registered || tf.findBackendFactory('webgpu') === null) {
    // Importing the package registered its own factory (navigator.gpu was set): replace it.
    if (tf.findBackendFactory('webgpu') !== null) tf.removeBackend('webgpu');
    const {adapter} = state;
    // As the package's own factory (base.ts), but on our adapter rather than a fresh request.
    tf.registerBackend(
      'webgpu',
      async () => {
        const requiredFeatures: string[] = [];
        if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
        const limits = adapter.limits;
        const device = await adapter.requestDevice({
          requiredFeatures,
          requiredLimits: {
            maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
            maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
            maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
            maxBufferSize: limits.maxBufferSize,
            maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
            maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
          },
        });
        state.device = device;
        return new WebGPUBackend(device, adapter.info);
      },
      // Below wasm (2): tfjs never falls onto webgpu by itself; initBackend sets it explicitly.
      0,
    );
    registered = true;
  }
  let ok = false;
  try {
    ok = await tf.setBackend('webgpu');
  } catch (error) {
    throw new WebGpuUnavailable(`the webgpu backend failed to initialise on ${report.name}: ${(error as Error).message}`, 'device', 'run `dtrain doctor` for details', {cause: error});
  }
  if (!ok) throw new WebGpuUnavailable(`the webgpu backend failed to initialise on ${report.name}`, 'device', 'run `dtrain doctor`; DEBUG=1 shows tfjs errors');
  await tf.ready();
  return report;
}

/**
 * Drops every reference to Dawn (tf backend, device, navigator.gpu) so that Node can exit; a later
 * probeWebGpu starts over. Safe to call when webgpu was never used.
 */
export function releaseWebGpu(): void {
  if (tf.findBackendFactory('webgpu') !== null) {
    try {
      tf.removeBackend('webgpu');
    } catch {
      // already disposed
    }
  }
  registered = false;
  try {
    live?.device?.destroy();
  } catch {
    // already lost
  }
  const nav = (globalThis as {navigator?: Record<string, unknown>}).navigator;
  if (nav && live && nav.gpu === live.gpu) delete nav.gpu;
  live = undefined;
}

/** The Mesa/Vulkan facts `dtrain doctor` prints under webgpu. */
export function vulkanSummary(vulkan: VulkanInstall = inspectVulkan()): string {
  const parts = [`Vulkan loader ${vulkan.loader ? 'present' : 'missing'}`, `ICDs: ${vulkan.icds.length ? vulkan.icds.join(', ') : 'none'}`];
  if (vulkan.mesaVersion) parts.push(`mesa-vulkan-drivers ${vulkan.mesaVersion}`);
  return parts.join('; ');
}
