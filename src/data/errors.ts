// The data stage's error for bad input files (kept apart so the readers' modules share it
// without importing one another).

/** Bad input data. The message names the file, the line and the field when known. */
export class DataError extends Error {
  override name = 'DataError';
}
