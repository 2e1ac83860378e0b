// Golden 10: Bottleneck ResNet with the wide_resnet50_2 structure (width = 2·planes), scaled down.
import { runResnetGolden } from './07_resnet_golden.js';

runResnetGolden('10_', 'wide_resnet50_2');
