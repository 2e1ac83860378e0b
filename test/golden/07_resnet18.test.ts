// Golden 07: torchvision resnet18 (BasicBlock), eval mode, from the U-Flow state dict
// (`feature_extractor.extractor.` prefix, I8 conv weights decoded per the golden format).
import { runResnetGolden } from './07_resnet_golden.js';

runResnetGolden('07_', 'resnet18');
