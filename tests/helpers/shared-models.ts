// Real pretrained models kept beside the project at ../shared/models (never in the repository;
// see its README.md). Tests that use them skip with `sharedSkip` as the reason when absent.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SHARED_MODELS = fileURLToPath(new URL('../../../shared/models/', import.meta.url));
export const STORIES_GGUF = path.join(SHARED_MODELS, 'stories260K', 'stories260K.gguf');
export const STORIES_BIN = path.join(SHARED_MODELS, 'stories260K', 'stories260K.bin');
/** false when stories260K is present, else the skip message. */
export const sharedSkip: false | string = existsSync(STORIES_GGUF) ? false : `${SHARED_MODELS} is absent (real pretrained models kept beside the project; see its README.md)`;
