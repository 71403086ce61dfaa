// Worker-thread entry for evaluation during training: register tsx here, then run the TypeScript.
import { register } from 'tsx/esm/api';

register();
await import('./during-training-thread.ts');
