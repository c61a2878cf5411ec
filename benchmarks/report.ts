/**
 * Markdown tables and hand-written SVG charts (no chart library) from the harness's results document.
 * @module
 */
import type { ConcurrentResult, SetupResult, WayId } from './cluster-setup.js';
import type { TrafficResult } from './traffic.js';
import type { DataplaneResult, DataplaneRow } from './dataplane.js';
import type { OpenvpnResult } from './openvpn.js';
import { ms, type Stats } from './common.js';

export interface ResultsDoc {
  date: string;
  machine: Record<string, any>;
  options: Record<string, any>;
  setup: SetupResult[];
  concurrency?: ConcurrentResult[];
  dataplane?: DataplaneResult;
  traffic?: TrafficResult;
  openvpn?: OpenvpnResult;
}

/** Goals checked against this run's own measurements (never against an earlier run). */
export const TARGETS = {
  /** createCluster / floor at N=16 and 64, and close() / the floor's teardown. */
  floorRatio: 1.5,
  /** bash / createCluster and ip-batch / createCluster at least. */
  bashRatio: 30,
  batchRatio: 5,
  /** Data plane: steer's kernel ns/packet at N = 4 and 8 at most this × the plain bridge's (N = 1). */
  steerMaxCostRatio: 1.1,
};

const WAYS: WayId[] = ['floor', 'netns-cluster', 'bash', 'ip-batch'];
const LABEL: Record<string, string> = { floor: 'floor (C)', 'netns-cluster': 'netns-cluster', bash: 'bash', 'ip-batch': 'ip -batch + nft -f' };
const range = (s: Stats): string => `${ms(s.min)}–${ms(s.max)}`;
const find = (doc: ResultsDoc, way: WayId, mode: string, n: number): SetupResult | undefined =>
  doc.setup.find((r) => r.way === way && r.mode === mode && r.n === n);
const kfmt = (x: number): string => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : x.toFixed(0));

function latencyTable(doc: ResultsDoc, what: 'setup' | 'teardown'): string[] {
  const reps = doc.options.reps;
  const lib = what === 'setup' ? 'createCluster' : 'close()';
  const lines = [
    `### ${what === 'setup' ? 'Setup' : 'Teardown (until the kernel removed everything)'}: ratios, and ms in this run on this machine (median of ${reps}, min–max)`,
    '',
    `| mode | N | ${lib} / floor | bash / ${lib} | ip-batch / ${lib} | floor ms | ${lib} ms | min–max | ms/node | bash ms | ip-batch ms |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const keys = [...new Set(doc.setup.map((r) => `${r.mode} ${r.n}`))];
  for (const k of keys) {
    const [mode, nStr] = k.split(' ');
    const n = Number(nStr);
    const [floor, lib, bash, batch] = WAYS.map((w) => find(doc, w, mode, n)?.[what]);
    if (!floor || !lib || !bash || !batch) continue;
    const f = find(doc, 'floor', mode, n)!;
    const from = what === 'setup' ? f.floorSetupFrom : f.floorTeardownFrom;
    lines.push(
      `| ${mode} | ${n} | **${(lib.median / floor.median).toFixed(2)}** | ${(bash.median / lib.median).toFixed(1)} | ${(batch.median / lib.median).toFixed(1)} | ${ms(floor.median)} (${from}) | ${ms(lib.median)} | ${range(lib)} | ${ms(lib.median / n)} | ${ms(bash.median)} | ${ms(batch.median)} |`,
    );
  }
  return lines;
}

/** Each floor run separately: its thread counts (setup) and teardown variants. */
function floorTable(doc: ResultsDoc): string[] {
  const runs = [...new Set(doc.setup.filter((r) => r.way.startsWith('floor-')).map((r) => r.way))];
  if (!runs.length) return [];
  const lines = [
    '### The floor\'s runs (ms, medians, this run): node threads for setup, teardown variants',
    '',
    `| mode | N | ${runs.map((r) => `${r} setup`).join(' | ')} | ${runs.map((r) => `${r} teardown`).join(' | ')} |`,
    `|---|---:|${runs.map(() => '---:|---:').join('|')}|`,
  ];
  for (const k of [...new Set(doc.setup.map((r) => `${r.mode} ${r.n}`))]) {
    const [mode, nStr] = k.split(' ');
    const rows = runs.map((w) => find(doc, w, mode, Number(nStr)));
    if (rows.some((r) => !r)) continue;
    lines.push(`| ${mode} | ${nStr} | ${rows.map((r) => ms(r!.setup.median)).join(' | ')} | ${rows.map((r) => ms(r!.teardown.median)).join(' | ')} |`);
  }
  return lines;
}

function phaseTable(doc: ResultsDoc): string[] {
  const rows = doc.setup.filter((r) => r.way === 'netns-cluster' && r.phases);
  if (!rows.length) return [];
  const names = Object.keys(rows[0].phases!);
  const lines = [
    '### Where createCluster\'s time goes (ms, medians of the same runs, measured inside createCluster: `cluster.buildPhases`)',
    '',
    `| mode | N | ${names.join(' | ')} | sum | createCluster | floor | namespaces + links+rules / floor |`,
    `|---|---:|${names.map(() => '---:').join('|')}|---:|---:|---:|---:|`,
  ];
  for (const r of rows) {
    const sum = names.reduce((a, p) => a + r.phases![p].median, 0);
    const floor = find(doc, 'floor', r.mode, r.n);
    const kernelPart = (r.phases!.namespaces?.median ?? 0) + (r.phases!['links+rules']?.median ?? 0);
    lines.push(
      `| ${r.mode} | ${r.n} | ${names.map((p) => ms(r.phases![p].median)).join(' | ')} | ${ms(sum)} | ${ms(r.setup.median)} | ${floor ? ms(floor.setup.median) : 'n/a'} | ${floor ? (kernelPart / floor.setup.median).toFixed(2) : 'n/a'} |`,
    );
  }
  return lines;
}

/** Per-node growth: slope between the two largest N (ms per added node), per way and mode; and memory. */
function growth(doc: ResultsDoc): string[] {
  const ns = [...new Set(doc.setup.map((r) => r.n))].sort((a, b) => a - b);
  const lines: string[] = [];
  if (ns.length >= 2) {
    const [a, b] = ns.slice(-2);
    const parts: string[] = [];
    for (const mode of [...new Set(doc.setup.map((r) => r.mode))]) {
      for (const w of WAYS) {
        const ra = find(doc, w, mode, a);
        const rb = find(doc, w, mode, b);
        if (ra && rb) parts.push(`${mode} ${w} ${ms((rb.setup.median - ra.setup.median) / (b - a))}`);
      }
    }
    lines.push(`Marginal setup cost per added node between N=${a} and N=${b} (ms/node, this run): ${parts.join('; ')}.`, '');
  }
  const mem = doc.setup.filter((r) => r.memory);
  if (mem.length) {
    lines.push(
      'Kernel memory per node after createCluster (KiB/node from /proc/meminfo around the warm-up build; other jobs on the machine add noise): ' +
        mem.map((r) => `${r.mode} N=${r.n}: ${r.memory!.availableKiBPerNode} (MemAvailable), ${r.memory!.slabKiBPerNode} (Slab)`).join('; ') + '.',
      '',
    );
  }
  return lines;
}

function concurrencyTable(rows: ConcurrentResult[]): string[] {
  const lines = [
    `### ${rows[0].clusters} clusters created concurrently in one process (N=${rows[0].n} each; ms until all are built, median of ${rows[0].reps}, this run)`,
    '',
    '| mode | concurrent ms | min–max | sequential ms | min–max | sequential / concurrent | nodes/s concurrent | nodes/s sequential |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows)
    lines.push(
      `| ${r.mode} | ${ms(r.concurrent.median)} | ${range(r.concurrent)} | ${ms(r.sequential.median)} | ${range(r.sequential)} | ${(r.sequential.median / r.concurrent.median).toFixed(2)} | ${r.concurrentNodesPerS} | ${r.sequentialNodesPerS} |`,
    );
  return lines;
}

/** What limited a saturated run: the receivers (they dropped part of what was sent) or the senders. */
export function bottleneck(r: TrafficResult['rows'][number]): string {
  return r.udpPps.median / r.udpSentPps.median < 0.95 ? 'receiver-bound' : 'sender-bound';
}

const ns0 = (x: number): string => x.toFixed(0);

function dataplaneTables(d: DataplaneResult): string[] {
  const floor = d.rows[0];
  const lines = [
    `### Data plane: kernel CPU per delivered packet (${kfmt(d.pps)} pkt/s offered, ${d.payloadBytes}-byte UDP, ${d.durationS} s windows, median of ${d.reps}; this run, this machine)`,
    '',
    `Sender, receivers and the packet path pinned to cpu ${d.cpu}; perf samples of our own tasks there (kernel mode, every ${d.periodNs / 1000} µs) × period ÷ packets delivered. ` +
      `× floor = ÷ ${floor.id}'s median; × plain N = ÷ plain N's (same N receivers, no rules); netfilter = the part in netfilter/nftables/br_netfilter/conntrack symbols.`,
    '',
    '| config | N | ns/packet | min–max | × floor | × plain N | netfilter ns/packet | delivered pkt/s | delivered | ksoftirqd | other tasks on the cpu |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of d.rows) {
    lines.push(
      `| ${r.id} | ${r.n} | ${ns0(r.nsPerPacket.median)} | ${ns0(r.nsPerPacket.min)}–${ns0(r.nsPerPacket.max)} | ${r.ratio.toFixed(3)} | ${r.ratioPlainN?.toFixed(3) ?? '—'} | ${ns0(r.netfilterNsPerPacket.median)} | ${kfmt(r.deliveredPps.median)} | ${(100 * r.deliveredShare.median).toFixed(1)}% | ${(100 * r.ksoftirqdShare).toFixed(1)}% | ${(100 * r.othersShare.median).toFixed(0)}% |`,
    );
  }
  const flood = d.rows.filter((r) => r.kind === 'flood');
  if (flood.length) {
    lines.push('', 'Flood: every node receives every packet and all but one drop it, so its cost is the total over the nodes:', '');
    lines.push('| N | flood ns/packet | flood, iptables backend | steer ns/packet | plain N ns/packet | flood − plain N | per extra node |', '|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of flood) {
      const at = (kind: string) => d.rows.find((x) => x.kind === kind && x.n === r.n);
      const [steer, plain, ipt] = [at('steer'), at('plain'), at('flood-iptables')];
      const extra = plain ? r.nsPerPacket.median - plain.nsPerPacket.median : undefined;
      lines.push(
        `| ${r.n} | ${ns0(r.nsPerPacket.median)} | ${ipt ? ns0(ipt.nsPerPacket.median) : '—'} | ${steer ? ns0(steer.nsPerPacket.median) : '—'} | ${plain ? ns0(plain.nsPerPacket.median) : '—'} | ${extra === undefined ? '—' : ns0(extra)} | ${extra === undefined || r.n < 2 ? '—' : ns0(extra / (r.n - 1))} |`,
      );
    }
  }
  lines.push('', '#### Where the netfilter time goes (ns per delivered packet, by kernel function; all repetitions pooled)', '');
  lines.push('| config | netfilter symbols |', '|---|---|');
  for (const r of d.rows) lines.push(`| ${r.id} | ${r.netfilterTop.slice(0, 8).map((x) => `${x.sym} ${x.nsPerPacket}`).join(', ') || '—'} |`);
  lines.push('', '#### Top kernel symbols (ns per delivered packet)', '');
  lines.push('| config | top symbols |', '|---|---|');
  for (const r of d.rows) lines.push(`| ${r.id} | ${r.top.slice(0, 6).map((x) => `${x.sym} ${x.nsPerPacket}`).join(', ')} |`);
  return lines;
}

function trafficTable(t: TrafficResult): string[] {
  const single = t.rows.find((r) => r.mode === 'single')!;
  const lines = [
    `### Saturated packet rate — secondary view (${t.senders} senders as fast as they can, ${t.payloadBytes}-byte UDP payload, ${t.durationS} s per run, median of ${t.reps}; ratio = config / single)`,
    '',
    'This measures whatever saturates first on 2 shared cores, not what the rules cost (see the cost per packet above). ' +
      'Bottleneck: *receiver-bound* when less than 95% of what was sent was delivered (the receivers dropped the rest), *sender-bound* otherwise.',
    '',
    '| config | UDP delivered pkt/s | min–max | ratio | UDP sent pkt/s | delivered / sent | bottleneck | per-node share | TCP conn/s | min–max | ratio |',
    '|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|',
  ];
  for (const r of t.rows) {
    const total = r.udpByNode.reduce((a, b) => a + b, 0) || 1;
    lines.push(
      `| ${r.config} | ${kfmt(r.udpPps.median)} | ${kfmt(r.udpPps.min)}–${kfmt(r.udpPps.max)} | ${(r.udpPps.median / single.udpPps.median).toFixed(2)} | ${kfmt(r.udpSentPps.median)} | ${(r.udpPps.median / r.udpSentPps.median).toFixed(2)} | ${bottleneck(r)} | ${r.udpByNode.map((x) => `${Math.round((100 * x) / total)}%`).join(' / ')} | ${kfmt(r.tcpCps.median)} | ${kfmt(r.tcpCps.min)}–${kfmt(r.tcpCps.max)} | ${(r.tcpCps.median / single.tcpCps.median).toFixed(2)} |`,
    );
  }
  return lines;
}

function openvpnTable(o: OpenvpnResult): string[] {
  if (o.error || !o.rows) return ['### OpenVPN', '', `Not measured: ${o.error ?? 'no rows'}`];
  const one = o.rows.find((r) => r.nodes === 1)!;
  const lines = [
    `### OpenVPN (${o.clients} real clients, iperf3 TCP through each tunnel at once, ${o.durationS} s, median of ${o.rounds} rounds)`,
    '',
    '| server nodes | clients per node | Mbit/s total | min–max | ratio | server openvpn CPU per node (% of a core) | client openvpn CPU total |',
    '|---:|---|---:|---:|---:|---|---:|',
  ];
  for (const r of o.rows)
    lines.push(
      `| ${r.nodes} | ${r.clientsPerNode.join(' / ')} | ${r.throughputMbps.median.toFixed(0)} | ${r.throughputMbps.min.toFixed(0)}–${r.throughputMbps.max.toFixed(0)} | ${(r.throughputMbps.median / one.throughputMbps.median).toFixed(2)} | ${r.serverCpuPct.map((x) => `${x}%`).join(' / ')} | ${r.clientCpuPct}% |`,
    );
  if (o.errors?.length) lines.push('', `Failed rounds (not counted): ${o.errors.join('; ')}`);
  return lines;
}

/** The goals, each checked against numbers from this run only. */
function targets(doc: ResultsDoc): string[] {
  const lines = [
    '### Targets (this run\'s own ratios)',
    '',
    ...(doc.setup?.length
      ? [
          'The ceiling is the same ratio for the floor itself (ip -batch or bash ÷ the floor, this run): no implementation of this',
          'topology can beat the kernel\'s floor, so a goal above its ceiling cannot be met on this machine today.',
          '',
        ]
      : []),
    '| target | goal | this run | ceiling (the floor\'s own) | met? |',
    '|---|---:|---:|---:|---|',
  ];
  const add = (what: string, goal: string, now: string | undefined, ok: boolean | undefined, ceiling?: string): void =>
    void lines.push(`| ${what} | ${goal} | ${now ?? 'n/a'} | ${ceiling ?? '—'} | ${ok === undefined ? 'n/a' : ok ? 'yes' : 'no'} |`);
  for (const mode of ['steer', 'flood']) {
    for (const n of [16, 64]) {
      const lib = find(doc, 'netns-cluster', mode, n);
      const floor = find(doc, 'floor', mode, n);
      const bash = find(doc, 'bash', mode, n);
      const batch = find(doc, 'ip-batch', mode, n);
      if (!lib || !floor) continue;
      const r = lib.setup.median / floor.setup.median;
      add(`createCluster / floor, ${mode}, N=${n}`, `≤ ${TARGETS.floorRatio}`, r.toFixed(2), r <= TARGETS.floorRatio);
      const t = lib.teardown.median / floor.teardown.median;
      add(`close() / floor teardown, ${mode}, N=${n}`, `≤ ${TARGETS.floorRatio}`, t.toFixed(2), t <= TARGETS.floorRatio);
      if (batch) {
        const b = batch.setup.median / lib.setup.median;
        add(`ip -batch + nft -f / createCluster, ${mode}, N=${n}`, `≥ ${TARGETS.batchRatio}`, b.toFixed(1), b >= TARGETS.batchRatio, (batch.setup.median / floor.setup.median).toFixed(1));
      }
      if (bash) {
        const b = bash.setup.median / lib.setup.median;
        add(`bash / createCluster, ${mode}, N=${n}`, `≥ ${TARGETS.bashRatio}`, b.toFixed(1), b >= TARGETS.bashRatio, (bash.setup.median / floor.setup.median).toFixed(1));
      }
    }
  }
  const d = doc.dataplane;
  if (d?.rows.length) {
    for (const r of d.rows.filter((x: DataplaneRow) => x.kind === 'steer' && x.n >= 4)) {
      add(`${r.id}: kernel ns/packet ÷ the plain bridge's (N = 1)`, `≤ ${TARGETS.steerMaxCostRatio}`, r.ratio.toFixed(3), r.ratio <= TARGETS.steerMaxCostRatio);
    }
  }
  return lines;
}

export function renderMarkdown(doc: ResultsDoc): string {
  const m = doc.machine;
  const out: string[] = [
    `## netns-cluster benchmark — ${doc.date}`,
    '',
    `Machine: Linux ${m.kernel}, ${m.cpus} × ${m.cpuModel}, ${m.memoryMiB} MiB; Node ${m.node}; ${m.iproute2}; ${m.nft}; ${m.openvpn ?? 'no openvpn'}. ` +
      `Load average at start ${m.loadavgAtStart?.join(' ')}${m.loadavg ? `, during: ${Object.entries(m.loadavg).map(([k, v]) => `${k} ${(v as number[])[0].toFixed(2)}`).join(', ')}` : ''} ` +
      '(other jobs on this machine disturb the numbers when the load is high).',
    '',
  ];
  if (doc.setup.length) {
    out.push(...latencyTable(doc, 'setup'), '', ...latencyTable(doc, 'teardown'), '', ...floorTable(doc), '', ...phaseTable(doc), '', ...growth(doc));
  }
  if (doc.concurrency?.length) out.push(...concurrencyTable(doc.concurrency), '');
  if (doc.dataplane?.rows.length) out.push(...dataplaneTables(doc.dataplane), '');
  if (doc.traffic?.rows.length) out.push(...trafficTable(doc.traffic), '');
  if (doc.openvpn) out.push(...openvpnTable(doc.openvpn), '');
  out.push(...targets(doc));
  return out.join('\n');
}

// ───────────────────────────── SVG ─────────────────────────────

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const COLORS: Record<string, string> = { 'netns-cluster': '#1f77b4', bash: '#d62728', 'ip-batch': '#2ca02c', floor: '#555555' };

function svgDoc(w: number, h: number, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** ms per node vs N, log-log, one line per way (all four from the same run); solid steer, dashed flood. */
function latencyChart(doc: ResultsDoc, what: 'setup' | 'teardown'): string {
  const W = 820, H = 460, L = 70, R = 250, T = 40, B = 50;
  const pts = doc.setup.filter((r) => WAYS.includes(r.way));
  const ns = [...new Set(pts.map((r) => r.n))].sort((a, b) => a - b);
  const per = (r: SetupResult, k: 'min' | 'max' | 'median'): number => r[what][k] / r.n;
  const values = pts.flatMap((r) => [per(r, 'min'), per(r, 'max')]).filter((v) => v > 0);
  const ymin = 10 ** Math.floor(Math.log10(Math.min(...values)));
  const ymax = 10 ** Math.ceil(Math.log10(Math.max(...values)));
  const xmin = Math.min(...ns), xmax = Math.max(...ns, xmin * 2);
  const x = (n: number): number => L + ((Math.log2(n) - Math.log2(xmin)) / (Math.log2(xmax) - Math.log2(xmin) || 1)) * (W - L - R);
  const y = (v: number): number => T + (1 - (Math.log10(v) - Math.log10(ymin)) / (Math.log10(ymax) - Math.log10(ymin))) * (H - T - B);
  const body: string[] = [
    `<text x="${(W - R) / 2 + 30}" y="22" font-size="15" text-anchor="middle">${what === 'setup' ? 'Setup' : 'Teardown'} of the complete data plane: ms per node (log scale), one run</text>`,
  ];
  for (let d = ymin; d <= ymax; d *= 10) {
    for (const m of [1, 2, 5]) {
      const v = d * m;
      if (v > ymax) break;
      body.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="${m === 1 ? '#ccc' : '#eee'}"/>`);
      if (m === 1 || ymax / ymin <= 1000) body.push(`<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end" fill="#444">${v >= 1 ? v : Number(v.toPrecision(2))}</text>`);
    }
  }
  for (const n of ns) {
    body.push(`<line x1="${x(n)}" x2="${x(n)}" y1="${T}" y2="${H - B}" stroke="#eee"/>`);
    body.push(`<text x="${x(n)}" y="${H - B + 16}" text-anchor="middle" fill="#444">${n}</text>`);
  }
  body.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">N nodes (log scale)</text>`);
  body.push(`<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">ms per node</text>`);
  body.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#888"/>`);
  const legend: [string, string, string][] = [];
  for (const mode of ['steer', 'flood']) {
    for (const w of WAYS) {
      const series = ns.map((n) => find(doc, w, mode, n)).filter((r): r is SetupResult => !!r);
      if (!series.length) continue;
      const dash = mode === 'flood' ? ' stroke-dasharray="6 4"' : '';
      body.push(`<polyline fill="none" stroke="${COLORS[w]}" stroke-width="2"${dash} points="${series.map((r) => `${x(r.n).toFixed(1)},${y(per(r, 'median')).toFixed(1)}`).join(' ')}"/>`);
      for (const r of series) {
        body.push(`<line x1="${x(r.n)}" x2="${x(r.n)}" y1="${y(per(r, 'min'))}" y2="${y(per(r, 'max'))}" stroke="${COLORS[w]}" stroke-width="1"/>`);
        body.push(`<circle cx="${x(r.n)}" cy="${y(per(r, 'median'))}" r="3" fill="${mode === 'flood' ? 'white' : COLORS[w]}" stroke="${COLORS[w]}"/>`);
      }
      legend.push([`${LABEL[w]} (${mode})`, COLORS[w], dash]);
    }
  }
  legend.forEach(([label, color, dash], i) => {
    const ly = T + 10 + i * 20;
    body.push(`<line x1="${W - R + 10}" x2="${W - R + 40}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`);
    body.push(`<text x="${W - R + 46}" y="${ly + 4}">${esc(label)}</text>`);
  });
  body.push(`<text x="${W - R + 10}" y="${H - B}" fill="#666" font-size="10">medians; bars: min–max of ${doc.options.reps}</text>`);
  return svgDoc(W, H, body);
}

/** The smallest 1, 2, 2.5, 5 × 10^k at or above x (axis maximum with round ticks at quarters). */
function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  return [1, 1.2, 1.6, 2, 2.5, 4, 5, 6, 8, 10].map((m) => m * p).find((v) => v >= x)!;
}

/** Bars: UDP delivered pkt/s and TCP conn/s per configuration, with min–max whiskers. */
function trafficChart(t: TrafficResult): string {
  const W = 820, H = 420, T = 50, B = 60, panelW = 340, gap = 60, L = 60;
  const body: string[] = [`<text x="${W / 2}" y="22" font-size="15" text-anchor="middle">Data plane: ${t.senders} senders, ${t.durationS} s runs, median (whiskers min–max)</text>`];
  const panels: [string, (r: TrafficResult['rows'][number]) => Stats, string][] = [
    ['UDP packets/s delivered', (r) => r.udpPps, '#1f77b4'],
    ['TCP connections/s', (r) => r.tcpCps, '#ff7f0e'],
  ];
  panels.forEach(([title, get, color], p) => {
    const x0 = L + p * (panelW + gap);
    const max = niceMax(Math.max(...t.rows.map((r) => get(r).max)) * 1.1);
    const y = (v: number): number => T + (1 - v / max) * (H - T - B);
    body.push(`<text x="${x0 + panelW / 2}" y="${T - 12}" text-anchor="middle" font-size="13">${title}</text>`);
    for (let i = 0; i <= 4; i++) {
      const v = (max / 4) * i;
      body.push(`<line x1="${x0}" x2="${x0 + panelW}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`);
      body.push(`<text x="${x0 - 4}" y="${y(v) + 4}" text-anchor="end" fill="#444" font-size="10">${kfmt(v)}</text>`);
    }
    const bw = panelW / t.rows.length;
    const single = get(t.rows[0]).median;
    t.rows.forEach((r, i) => {
      const s = get(r);
      const bx = x0 + i * bw + bw * 0.15;
      const fill = r.mode === 'single' ? '#7f7f7f' : r.mode === 'flood' ? '#9ecae1' : color;
      body.push(`<rect x="${bx}" y="${y(s.median)}" width="${bw * 0.7}" height="${y(0) - y(s.median)}" fill="${fill}"/>`);
      body.push(`<line x1="${bx + bw * 0.35}" x2="${bx + bw * 0.35}" y1="${y(s.min)}" y2="${y(s.max)}" stroke="black"/>`);
      body.push(`<text x="${bx + bw * 0.35}" y="${y(s.max) - 4}" text-anchor="middle" font-size="10">${(s.median / single).toFixed(2)}×</text>`);
      body.push(`<text x="${bx + bw * 0.35}" y="${H - B + 14}" text-anchor="middle" font-size="10">${esc(r.config.replace(' N=', ' '))}</text>`);
    });
    body.push(`<line x1="${x0}" x2="${x0 + panelW}" y1="${y(0)}" y2="${y(0)}" stroke="#888"/>`);
  });
  body.push(`<text x="${W / 2}" y="${H - 16}" text-anchor="middle" fill="#444" font-size="11">labels above bars: ratio to the single plain namespace (no rules)</text>`);
  return svgDoc(W, H, body);
}

/** Kernel ns per delivered packet against N (log2 axis), one line per kind, whiskers min–max, the floor × 1.1 dotted. */
function dataplaneChart(d: DataplaneResult): string {
  const W = 800, H = 440, L = 70, R = 210, T = 40, B = 50;
  // Variants (one configuration each, same N) are single points of their own.
  const series = (r: DataplaneRow): string => (r.kind.endsWith('variant') ? r.id : r.kind);
  const kinds = [...new Set(d.rows.map(series))];
  const palette: Record<string, string> = { plain: '#7f7f7f', steer: '#1f77b4', flood: '#d62728' };
  const extra = ['#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#bcbd22'];
  const color = (k: string): string => palette[k] ?? extra[kinds.filter((x) => !palette[x]).indexOf(k) % extra.length];
  const ns = [...new Set(d.rows.map((r) => r.n))].sort((a, b) => a - b);
  const floor = d.rows[0].nsPerPacket.median;
  const ymax = niceMax(Math.max(...d.rows.map((r) => r.nsPerPacket.max), floor * 1.1) * 1.05);
  const xmin = Math.min(...ns), xmax = Math.max(...ns, xmin * 2);
  const x = (n: number): number => L + ((Math.log2(n) - Math.log2(xmin)) / (Math.log2(xmax) - Math.log2(xmin) || 1)) * (W - L - R);
  const y = (v: number): number => T + (1 - v / ymax) * (H - T - B);
  const body: string[] = [`<text x="${(L + W - R) / 2}" y="22" font-size="15" text-anchor="middle">Kernel CPU per delivered packet at ${kfmt(d.pps)} pkt/s (ns, median of ${d.reps})</text>`];
  for (let i = 0; i <= 5; i++) {
    const v = (ymax / 5) * i;
    body.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`);
    body.push(`<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end" fill="#444" font-size="10">${v.toFixed(0)}</text>`);
  }
  for (const n of ns) body.push(`<text x="${x(n)}" y="${H - B + 16}" text-anchor="middle" fill="#444">${n}</text>`);
  body.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">N nodes</text>`);
  body.push(`<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">ns per packet</text>`);
  body.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#888"/>`);
  body.push(`<line x1="${L}" x2="${W - R}" y1="${y(floor * 1.1)}" y2="${y(floor * 1.1)}" stroke="#1f77b4" stroke-dasharray="2 3"/>`);
  const legend: [string, string, string][] = [];
  for (const k of kinds) {
    const rows = d.rows.filter((r) => series(r) === k).sort((a, b) => a.n - b.n);
    const c = color(k);
    if (rows.length > 1) body.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${rows.map((r) => `${x(r.n).toFixed(1)},${y(r.nsPerPacket.median).toFixed(1)}`).join(' ')}"/>`);
    for (const r of rows) {
      body.push(`<line x1="${x(r.n)}" x2="${x(r.n)}" y1="${y(r.nsPerPacket.min)}" y2="${y(r.nsPerPacket.max)}" stroke="${c}"/>`);
      body.push(`<circle cx="${x(r.n)}" cy="${y(r.nsPerPacket.median)}" r="3.5" fill="${c}"><title>${esc(r.id)}: ${r.nsPerPacket.median.toFixed(0)} ns</title></circle>`);
    }
    legend.push([k === 'plain' ? 'plain bridge, no rules' : k, c, '']);
  }
  legend.push(['plain 1 × 1.1 (steer target)', '#1f77b4', ' stroke-dasharray="2 3"']);
  legend.forEach(([label, c, dash], i) => {
    const ly = T + 10 + i * 20;
    body.push(`<line x1="${W - R + 10}" x2="${W - R + 40}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"${dash}/>`);
    body.push(`<text x="${W - R + 46}" y="${ly + 4}" font-size="11">${esc(label)}</text>`);
  });
  body.push(`<text x="${W - R + 10}" y="${H - B}" fill="#666" font-size="10">bars: min–max</text>`);
  return svgDoc(W, H, body);
}

/** Stacked bars of createCluster's phases per N (steer and flood). */
function phaseChart(doc: ResultsDoc): string | undefined {
  const rows = doc.setup.filter((r) => r.way === 'netns-cluster' && r.phases);
  if (!rows.length) return undefined;
  const names = Object.keys(rows[0].phases!);
  const palette = ['#8c564b', '#1f77b4', '#2ca02c', '#9467bd', '#bcbd22', '#d62728'];
  const W = 760, H = 420, L = 60, R = 150, T = 40, B = 60;
  const totals = rows.map((r) => names.reduce((a, p) => a + r.phases![p].median, 0));
  const max = niceMax(Math.max(...totals) * 1.05);
  const y = (v: number): number => T + (1 - v / max) * (H - T - B);
  const bw = (W - L - R) / rows.length;
  const body: string[] = [`<text x="${(W - R) / 2 + 30}" y="22" font-size="15" text-anchor="middle">createCluster phases (ms, medians), steer | flood by N</text>`];
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    body.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`);
    body.push(`<text x="${L - 4}" y="${y(v) + 4}" text-anchor="end" font-size="10" fill="#444">${v.toFixed(v < 10 ? 1 : 0)}</text>`);
  }
  rows.forEach((r, i) => {
    let acc = 0;
    const bx = L + i * bw + bw * 0.1;
    names.forEach((p, j) => {
      const v = r.phases![p].median;
      body.push(`<rect x="${bx}" y="${y(acc + v)}" width="${bw * 0.8}" height="${y(acc) - y(acc + v)}" fill="${palette[j % palette.length]}"/>`);
      acc += v;
    });
    const lib = find(doc, 'netns-cluster', r.mode, r.n);
    if (lib) body.push(`<line x1="${bx - 2}" x2="${bx + bw * 0.8 + 2}" y1="${y(lib.setup.median)}" y2="${y(lib.setup.median)}" stroke="black" stroke-width="2"/>`);
    body.push(`<text x="${bx + bw * 0.4}" y="${H - B + 14}" text-anchor="middle" font-size="10">${r.mode[0]}${r.n}</text>`);
  });
  names.forEach((p, j) => {
    body.push(`<rect x="${W - R + 10}" y="${T + j * 20}" width="14" height="14" fill="${palette[j % palette.length]}"/>`);
    body.push(`<text x="${W - R + 30}" y="${T + j * 20 + 11}">${esc(p)}</text>`);
  });
  body.push(`<line x1="${W - R + 10}" x2="${W - R + 24}" y1="${T + names.length * 20 + 7}" y2="${T + names.length * 20 + 7}" stroke="black" stroke-width="2"/>`);
  body.push(`<text x="${W - R + 30}" y="${T + names.length * 20 + 11}">createCluster total</text>`);
  body.push(`<text x="${(L + W - R) / 2}" y="${H - 20}" text-anchor="middle" font-size="11">s = steer, f = flood; number = N</text>`);
  return svgDoc(W, H, body);
}

export function renderSvgs(doc: ResultsDoc): Record<string, string> {
  const out: Record<string, string> = {};
  if (doc.setup.length) {
    out['setup-latency'] = latencyChart(doc, 'setup');
    out['teardown-latency'] = latencyChart(doc, 'teardown');
    const p = phaseChart(doc);
    if (p) out['setup-phases'] = p;
  }
  if (doc.dataplane?.rows.length) out['dataplane-cost'] = dataplaneChart(doc.dataplane);
  if (doc.traffic?.rows.length) out['packet-rate'] = trafficChart(doc.traffic);
  return out;
}
