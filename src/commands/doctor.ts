import {execFileSync} from 'node:child_process';
import {readFileSync} from 'node:fs';
import {cpus, freemem, totalmem} from 'node:os';

import {DtrainCommand} from '../cli/base-command.js';
import {type BackendName, type BackendReport, probeAllBackends} from '../engine/backend.js';
import {inspectVulkan, listAdapters, type VulkanInstall, vulkanSummary} from '../engine/webgpu.js';

export interface DoctorReport {
  node: string;
  platform: string;
  cpu: {model: string; cores: number};
  memory: {totalGiB: number; freeGiB: number};
  /** What the kernel/driver says about NVIDIA GPUs, independent of any backend. */
  nvidia: {driver?: string; gpus: string[]};
  backends: BackendReport[];
  webgpu: {adapters: string[]; vulkan: VulkanInstall};
  auto: {backend: BackendName | null; why: string};
}

const gib = (bytes: number) => Math.round((bytes / 2 ** 30) * 10) / 10;

function nvidiaInfo(): DoctorReport['nvidia'] {
  let driver: string | undefined;
  try {
    driver = readFileSync('/proc/driver/nvidia/version', 'utf8').match(/Kernel Module\s+([\d.]+)/)?.[1];
  } catch {
    // no NVIDIA kernel module
  }
  let gpus: string[] = [];
  try {
    gpus = execFileSync('nvidia-smi', ['-L'], {encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore']})
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  } catch {
    // nvidia-smi absent or failing
  }
  return {driver, gpus};
}

export default class DoctorCommand extends DtrainCommand {
  static override summary = 'Explain this machine: which compute backends load, on what device, why not, and what to do.';
  static override description = `Tries every backend (tensorflow = tfjs-node-gpu, webgpu = Dawn over Vulkan, wasm, cpu), runs one small op on each that loads, lists the WebGPU adapters Dawn sees, and says which backend --backend auto would take and why: tensorflow with a GPU → webgpu with a hardware adapter → tensorflow on CPU → wasm → cpu (a software adapter such as lavapipe only with --backend webgpu). Always exits 0: it reports, it does not judge. See docs/gpu.md.`;
  static override examples = ['<%= config.bin %> doctor', '<%= config.bin %> doctor --json'];

  async run(): Promise<DoctorReport> {
    await this.parse(DoctorCommand);
    const cpuList = cpus();
    const vulkan = inspectVulkan();
    let adapters: string[] = [];
    try {
      adapters = await listAdapters();
    } catch {
      // dawn.node does not load: the webgpu row says why
    }
    const {backends, auto, autoWhy} = await probeAllBackends();
    const report: DoctorReport = {
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      cpu: {model: cpuList[0]?.model.trim() ?? 'unknown', cores: cpuList.length},
      memory: {totalGiB: gib(totalmem()), freeGiB: gib(freemem())},
      nvidia: nvidiaInfo(),
      backends,
      webgpu: {adapters, vulkan},
      auto: {backend: auto ?? null, why: autoWhy},
    };
    if (!this.jsonEnabled()) this.log(render(report));
    return report;
  }
}

function status(b: BackendReport): string {
  if (!b.ok) return 'unavailable';
  if (b.name === 'webgpu' && !b.hardware) return 'ok (software)';
  return b.hardware ? 'ok (GPU)' : 'ok';
}

export function render(r: DoctorReport): string {
  const lines: string[] = [];
  lines.push(`Node     ${r.node} (${r.platform})`);
  lines.push(`CPU      ${r.cpu.cores} cores, ${r.cpu.model}`);
  lines.push(`Memory   ${r.memory.totalGiB} GiB (${r.memory.freeGiB} GiB free)`);
  const nv = r.nvidia;
  lines.push(`NVIDIA   ${nv.driver ? `driver ${nv.driver}` : 'no driver loaded'}${nv.gpus.length ? `: ${nv.gpus.join('; ')}` : ''}`);
  lines.push('');
  const width = Math.max(...r.backends.map((b) => status(b).length));
  for (const b of r.backends) {
    const ms = b.ms === undefined ? '' : ` [${b.ms < 1000 ? `${b.ms.toFixed(0)} ms` : `${(b.ms / 1000).toFixed(1)} s`}]`;
    lines.push(`${b.name.padEnd(10)} ${status(b).padEnd(width)}  ${b.ok ? b.device : b.why}${b.ok ? ms : ''}`);
    if (b.name === 'webgpu') {
      lines.push(`${''.padEnd(11)}adapters Dawn sees: ${r.webgpu.adapters.length ? r.webgpu.adapters.join(' | ') : 'none'}`);
      if (b.adapter) lines.push(`${''.padEnd(11)}chosen: vendor ${b.adapter.vendor || '?'}, architecture ${b.adapter.architecture || '?'}, fallback ${b.adapter.fallback}, ${b.adapter.hardware ? 'hardware' : 'software: only with --backend webgpu'}`);
      lines.push(`${''.padEnd(11)}${vulkanSummary(r.webgpu.vulkan)}`);
    }
    if (!b.ok && b.fix) lines.push(`${''.padEnd(11)}fix: ${b.fix}`);
  }
  lines.push('');
  lines.push(`--backend auto takes: ${r.auto.backend ?? 'nothing'} (${r.auto.why})`);
  return lines.join('\n');
}
