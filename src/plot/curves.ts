/**
 * The seed's training curves from a run's history: loss (train, test), accuracy (train, test) and
 * learning rate against the epoch, three panels side by side, as one PNG.
 */
import {type Box, linePanel, type PanelSpec} from './chart.js';
import {type HistoryPoint, readHistory} from './history.js';
import {svgDocument, svgText, svgToPng, writeImage} from './svg.js';

/** matplotlib's first colours, so the figure reads like the seed's. */
const TRAIN = '#1f77b4';
const TEST = '#ff7f0e';
const LR = '#2ca02c';

export const CURVES_SIZE = {width: 1500, height: 500};
const HEADER = 40;

function panels(points: HistoryPoint[]): PanelSpec[] {
  // history.jsonl counts epochs from 0; the CLI and the seed's plots count from 1.
  const series = (label: string, color: string, value: (p: HistoryPoint) => number) => ({label, color, points: points.map((p): [number, number] => [p.epoch + 1, value(p)])});
  return [
    {title: 'Loss', xLabel: 'epoch', yLabel: 'cross-entropy loss', legend: 'top-right', integerX: true, series: [series('train', TRAIN, (p) => p.trainLoss), series('test', TEST, (p) => p.testLoss)]},
    {
      title: 'Accuracy',
      xLabel: 'epoch',
      yLabel: 'accuracy (%)',
      legend: 'bottom-right',
      integerX: true,
      series: [series('train', TRAIN, (p) => 100 * p.trainAccuracy), series('test', TEST, (p) => 100 * p.testAccuracy)],
    },
    {title: 'Learning rate', xLabel: 'epoch', yLabel: 'learning rate', legend: 'top-right', integerX: true, series: [series('lr used in the epoch', LR, (p) => p.lr)]},
  ];
}

export function curvesSvg(points: HistoryPoint[], title: string): string {
  const {width, height} = CURVES_SIZE;
  const specs = panels(points);
  const panelWidth = width / specs.length;
  const body = specs.map((spec, i) => {
    const box: Box = {x: i * panelWidth, y: HEADER, width: panelWidth, height: height - HEADER};
    return linePanel(spec, box);
  });
  return svgDocument(width, height, svgText(width / 2, 26, title, {size: 18, anchor: 'middle', weight: 'bold'}) + body.join(''), '#ffffff');
}

export interface PlotResult {
  out: string;
  history: string;
  epochs: number;
  width: number;
  height: number;
  /** Lines of earlier runs in a reused run dir, left out of the plot. */
  earlierLines: number;
}

/** RUN_DIR (or its history.jsonl) → curves PNG at `out`. */
export async function plotRun(runDir: string, out: string): Promise<PlotResult> {
  const history = await readHistory(runDir);
  const last = history.points[history.points.length - 1];
  const title = `${runDir}: ${history.points.length} epoch${history.points.length === 1 ? '' : 's'}, final test accuracy ${(100 * last.testAccuracy).toFixed(2)}%`;
  await writeImage(out, await svgToPng(curvesSvg(history.points, title)));
  return {out, history: history.file, epochs: history.points.length, ...CURVES_SIZE, earlierLines: history.earlierLines};
}
