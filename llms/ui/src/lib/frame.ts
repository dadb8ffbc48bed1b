/**
 * Run a callback at most once per animation frame, however often it is requested. In a hidden
 * tab animation frames stop, so a timer runs it instead: a background tab keeps receiving.
 */
export interface FrameScheduler {
  request(): void;
  cancel(): void;
  /** Run now if a run is pending. */
  flush(): void;
}

export function frameScheduler(callback: () => void, hiddenDelayMs = 250): FrameScheduler {
  let frame: number | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;

  const clear = (): void => {
    if (frame !== null && typeof cancelAnimationFrame === "function") cancelAnimationFrame(frame);
    if (timer !== null) clearTimeout(timer);
    frame = null;
    timer = null;
  };
  const run = (): void => {
    clear();
    callback();
  };
  return {
    request() {
      if (frame !== null || timer !== null) return;
      const hidden = typeof document !== "undefined" && document.visibilityState === "hidden";
      if (!hidden && typeof requestAnimationFrame === "function") frame = requestAnimationFrame(run);
      // Also a timer: if the tab is hidden after this, the frame never comes.
      timer = setTimeout(run, hiddenDelayMs);
    },
    cancel: clear,
    flush() {
      if (frame !== null || timer !== null) run();
    },
  };
}
