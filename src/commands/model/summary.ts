import {DtrainCommand} from '../../cli/base-command.js';
import {sizeFlag} from '../../cli/flags.js';
import {formatTable} from '../../cli/table.js';
import {parseModelSize} from '../../model/architecture.js';
import {type ModelSummary, modelSummary} from '../../model/summary.js';

export default class ModelSummaryCommand extends DtrainCommand {
  static override summary = 'Print the per-layer table of ShuffleNetV2 (like torchsummary in the seed).';
  static override description = 'Layer names are PyTorch module paths; shapes are PyTorch NCHW with -1 for the batch. Totals: 352,042 (0.5), 1,263,854 (1), 2,488,874 (1.5), 5,338,026 (2).';
  static override examples = ['<%= config.bin %> model summary', '<%= config.bin %> model summary --size 1.5 --json'];
  static override flags = {size: sizeFlag};

  async run(): Promise<ModelSummary> {
    const {flags} = await this.parse(ModelSummaryCommand);
    const summary = modelSummary(parseModelSize(flags.size));
    this.log(formatTable(['Layer', 'Type', 'Output shape', 'Param #'], summary.layers.map((r) => [r.name, r.type, `[${r.outputShape.join(', ')}]`, r.params])));
    this.log('');
    this.log(`ShuffleNetV2 size ${summary.size}, input [${summary.inputShape.join(', ')}]`);
    this.log(`Total params: ${summary.totalParams.toLocaleString('en-US')}`);
    this.log(`Trainable params: ${summary.trainableParams.toLocaleString('en-US')}`);
    return summary;
  }
}
