/**
 * Things the renderer loads on first use (a highlight.js language, KaTeX). Rendering stays
 * synchronous: a render that needed something not loaded yet shows it plain and records the
 * load here; the view takes the loads after the render (`takeWaits`) and renders that piece
 * again when they are done.
 */
let waits: Promise<unknown>[] = [];

/** Record that the render under way needs `load` to be done for its final look. */
export function need(load: Promise<unknown>): void {
  load.catch(() => undefined); // a failed load leaves the piece plain; it is no page error
  waits.push(load);
}

/** Whether a render since the last `takeWaits` needed something not loaded yet. */
export function waiting(): boolean {
  return waits.length > 0;
}

/** The loads the renders since the last call needed (null: none; the output is final). */
export function takeWaits(): Promise<void> | null {
  if (waits.length === 0) return null;
  const all = Promise.allSettled(waits).then(() => undefined);
  waits = [];
  return all;
}

/**
 * A loader that runs once. A failed load (a chunk gone after an upgrade) is not tried again:
 * what needed it stays plain, instead of asking for it on every render.
 */
export function once<T>(load: () => Promise<T>): { get: () => Promise<T>; value: () => T | null; failed: () => boolean } {
  let promise: Promise<T> | null = null;
  let result: T | null = null;
  let failed = false;
  return {
    get(): Promise<T> {
      promise ??= load().then(
        (value) => (result = value),
        (error: unknown) => {
          failed = true;
          throw error;
        },
      );
      return promise;
    },
    value: () => result,
    failed: () => failed,
  };
}
