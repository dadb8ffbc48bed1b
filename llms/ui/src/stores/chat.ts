/**
 * Sending, stopping, regenerating, editing: the glue between a thread and a run (api/chat.ts).
 *
 * A run's events are folded at once into a plain draft of the answer (so every token lands in
 * the store as it arrives), and the draft is copied into the reactive message at most once per
 * animation frame (a timer when the tab is hidden): the view never renders more often than the
 * screen refreshes, however fast tokens come.
 */
import { reactive, toRaw } from "vue";
import { newStreamId, runChat, type RunEvent, type RunOptions, type RunOutcome } from "../api/chat";
import type { Gateway } from "../api/client";
import type { ChatRequest, WireMessage } from "../api/types";
import { imagesRefused, takesImages, wireContent, type Attachment } from "../lib/attachments";
import { frameScheduler, type FrameScheduler } from "../lib/frame";
import type { AuthStore } from "./auth";
import type { Thread } from "./db";
import { browserLocks, lockName, type Release, type RunLocks } from "./locks";
import {
  applyRunEvent,
  cutReason,
  finishMessage,
  isRunning,
  newAnswer,
  orphaned,
  resumable,
  type ChatMessage,
} from "./message";
import type { ModelsStore } from "./models";
import type { Settings } from "./settings";
import { newId, type ThreadStore } from "./threads";
import { branch, switchVersion } from "./versions";
import { t } from "../i18n";

export interface Banner {
  kind: "error" | "offline" | "info";
  message: string;
}

export interface ChatDeps {
  gateway: Gateway;
  threads: ThreadStore;
  settings: Settings;
  auth: AuthStore;
  models: Pick<ModelsStore, "selected"> & { state?: Pick<ModelsStore["state"], "models"> };
  now?: () => number;
  run?: (options: RunOptions) => Promise<RunOutcome>;
  schedule?: (callback: () => void) => FrameScheduler;
  /** Extra options for every run (tests: backoff, watchdog, network). */
  runOptions?: Partial<RunOptions>;
  /** Which tab runs which answer (default: Web Locks). */
  locks?: RunLocks;
  /** An answer run by this tab completed (saved): e.g. ask for the chat's title (lib/titles.ts). */
  onAnswered?: (thread: Thread, answer: ChatMessage) => void;
}

interface ActiveRun {
  threadId: string;
  controller: AbortController;
  done: Promise<void>;
}

/** How a run starts: a request to send, or a stream to follow again (holding its lock). */
interface RunStart {
  request: ChatRequest;
  resume?: { streamId: string; lastEventId: number };
  release?: Release | null;
}

/** The conversation as the API wants it: system prompt, then the turns before `end`. */
export function wireMessages(thread: Thread, end: number = thread.messages.length): WireMessage[] {
  const out: WireMessage[] = [];
  if (thread.systemPrompt.trim()) out.push({ role: "system", content: thread.systemPrompt });
  for (const message of thread.messages.slice(0, end)) {
    if (message.role === "user") out.push({ role: "user", content: wireContent(message.content, message.attachments) });
    else if (message.content.trim()) out.push({ role: "assistant", content: message.content });
  }
  return out;
}

/** Copy what changed from the draft into the reactive message. */
function copyInto(live: ChatMessage, draft: ChatMessage): void {
  const target = live as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(draft)) {
    if (key === "toolCalls") {
      // The draft mutates its calls in place: copies, so the view sees each change.
      live.toolCalls = draft.toolCalls?.map((call) => ({ ...call }));
    } else if (target[key] !== value) {
      target[key] = value;
    }
  }
}

/** What Continue asks after an answer cut at the max-tokens limit. */
export const CONTINUE_PROMPT = "Continue exactly where your previous answer stopped, without repeating anything.";

export class ChatController {
  readonly state = reactive({
    banner: null as Banner | null,
    /** Threads with an answer streaming in this tab. */
    running: [] as string[],
    /** The system prompt typed before the first message of a new chat. */
    draftSystemPrompt: "",
  });
  /** The runs of this tab, by answer id. */
  private readonly runs = new Map<string, ActiveRun>();
  /** Answers running elsewhere (another tab, or a page closed mid-answer) this tab waits to take over. */
  private readonly waiting = new Map<string, AbortController>();
  private readonly now: () => number;
  private readonly run: (options: RunOptions) => Promise<RunOutcome>;
  private readonly schedule: (callback: () => void) => FrameScheduler;
  private readonly locks: RunLocks;

  constructor(private readonly deps: ChatDeps) {
    this.now = deps.now ?? (() => Date.now());
    this.run = deps.run ?? runChat;
    this.schedule = deps.schedule ?? ((callback) => frameScheduler(callback));
    this.locks = deps.locks ?? browserLocks();
    deps.threads.onStopRequest = (messageId) => this.runs.get(messageId)?.controller.abort();
  }

  isRunning(threadId: string | undefined | null): boolean {
    return !!threadId && this.state.running.includes(threadId);
  }

  /** An answer of the thread runs, in this tab or in another one (mirrored here). */
  isBusy(thread: Thread | null | undefined): boolean {
    return !!thread && (this.isRunning(thread.id) || thread.messages.some(isRunning));
  }

  /** Wait for every run of this tab to end (tests, and before closing). */
  async settled(): Promise<void> {
    await Promise.all([...this.runs.values()].map((run) => run.done));
  }

  dismissBanner(): void {
    this.state.banner = null;
  }

  /** Send a user message (and its attachments) in the open thread (a new thread if none is open). */
  async send(text: string, attachments: Attachment[] = []): Promise<boolean> {
    const content = text.trim();
    if (!content && !attachments.length) return false;
    const model = this.deps.models.selected.value;
    if (!model) {
      this.state.banner = { kind: "error", message: t("notice.noModel") };
      return false;
    }
    if (attachments.some((a) => a.kind === "image") && this.takesImages(model) === false) {
      this.state.banner = { kind: "error", message: imagesRefused(model) };
      return false;
    }
    const { threads } = this.deps;
    let thread = threads.state.current;
    if (thread && this.isBusy(thread)) return false;
    if (!thread) {
      thread = await threads.create({ systemPrompt: this.state.draftSystemPrompt, model });
      this.state.draftSystemPrompt = "";
    }
    const message: ChatMessage = { id: newId(), role: "user", content, createdAt: this.now() };
    if (attachments.length) message.attachments = attachments;
    thread.messages.push(message);
    thread.model = model;
    void this.answer(thread, model);
    return true;
  }

  /** Answer the last user message again; the last answer stays as another version. */
  async regenerate(): Promise<void> {
    const thread = this.deps.threads.state.current;
    if (!thread || this.isBusy(thread)) return;
    const last = thread.messages.length - 1;
    if (last < 0) return;
    const model = this.modelFor(thread);
    if (!model) return;
    if (thread.messages[last]!.role === "assistant") await this.answer(thread, model, { branchAt: last });
    else await this.answer(thread, model);
  }

  /** A failed answer again: it (and anything after it) is replaced; its turn's versions stay. */
  async retry(messageId: string): Promise<void> {
    const thread = this.deps.threads.state.current;
    if (!thread || this.isBusy(thread)) return;
    const index = thread.messages.findIndex((m) => m.id === messageId);
    const model = this.modelFor(thread);
    if (index === -1 || !model) return;
    await this.answer(thread, model, { replaceAt: index });
  }

  /** A new version of a user message, answered again; the old question and what followed stay. */
  async edit(messageId: string, text: string): Promise<void> {
    const thread = this.deps.threads.state.current;
    const content = text.trim();
    if (!thread || this.isBusy(thread)) return;
    const index = thread.messages.findIndex((m) => m.id === messageId);
    const model = this.modelFor(thread);
    if (index === -1 || thread.messages[index]!.role !== "user" || !model) return;
    // The new version keeps the question's attachments: the edit is of its text.
    const { attachments } = thread.messages[index]!;
    if (!content && !attachments?.length) return;
    const edited: ChatMessage = { id: newId(), role: "user", content, createdAt: this.now() };
    if (attachments?.length) edited.attachments = attachments.map((a) => ({ ...toRaw(a) }));
    branch(thread.messages, index, [edited]);
    await this.answer(thread, model);
  }

  /** Show another version of the turn starting at `messageId` (0-based `to`). */
  async showVersion(messageId: string, to: number): Promise<void> {
    const thread = this.deps.threads.state.current;
    if (!thread || this.isBusy(thread)) return;
    const index = thread.messages.findIndex((m) => m.id === messageId);
    if (index === -1 || !switchVersion(thread.messages, index, to)) return;
    await this.deps.threads.save(thread, { touch: false }).catch(() => undefined);
  }

  /** Extend an answer cut at the max-tokens limit: the model goes on, into the same message. */
  async continueAnswer(messageId: string): Promise<void> {
    const thread = this.deps.threads.state.current;
    if (!thread || this.isBusy(thread)) return;
    const index = thread.messages.findIndex((m) => m.id === messageId);
    const live = thread.messages[index];
    if (!live || live.role !== "assistant" || index !== thread.messages.length - 1 || !cutReason(live)) return;
    const model = live.model ?? this.modelFor(thread);
    if (!model) return;
    const request = this.request(thread, model, index + 1);
    request.messages.push({ role: "user", content: CONTINUE_PROMPT });
    const now = this.now();
    Object.assign(live, {
      state: "connecting",
      finishReason: null,
      error: undefined,
      interrupted: false,
      usage: undefined,
      startedAt: now,
      firstTokenAt: undefined,
      endedAt: undefined,
      outputChunks: 0,
      reconnects: 0,
      streamId: newStreamId(),
      lastEventId: undefined,
      continued: (live.continued ?? 0) + 1,
      maxTokens: request.max_tokens,
      outputBase: live.content.length + (live.reasoning?.length ?? 0),
    } satisfies Partial<ChatMessage>);
    await this.start(thread, live, { request });
  }

  /** Stop every answer streaming in a thread (default: the open one), here or in another tab. */
  stop(threadId: string | null = this.deps.threads.state.current?.id ?? null): void {
    for (const run of this.runs.values()) {
      if (threadId === null || run.threadId === threadId) run.controller.abort();
    }
    const thread = this.deps.threads.state.current;
    if (!thread || (threadId !== null && thread.id !== threadId)) return;
    for (const message of thread.messages) {
      if (!isRunning(message) || this.runs.has(message.id)) continue;
      // Mirrored from the tab that runs it: ask that tab, and the gateway, to stop it.
      this.deps.threads.requestStop(thread.id, message.id);
      if (message.streamId) void this.deps.gateway.cancel(message.streamId);
    }
  }

  /**
   * The open thread has answers running with no run in this tab (a reload mid-answer, another
   * tab's answer): wait until no tab runs each one (its lock), then follow its stream again
   * from the last event seen, or mark it failed when it cannot be followed.
   */
  adopt(thread: Thread): void {
    for (const message of thread.messages) {
      if (!isRunning(message) || this.runs.has(message.id) || this.waiting.has(message.id)) continue;
      const controller = new AbortController();
      this.waiting.set(message.id, controller);
      void this.takeOver(thread, message.id, controller.signal);
    }
  }

  private async takeOver(thread: Thread, messageId: string, signal: AbortSignal): Promise<void> {
    const release = await this.locks.acquire(lockName(messageId), { wait: true, signal });
    this.waiting.delete(messageId);
    if (!release) return;
    const { threads } = this.deps;
    const index = thread.messages.findIndex((m) => m.id === messageId);
    const stored = await threads.storedMessage(thread.id, messageId).catch(() => null);
    const here = thread.messages[index];
    if (!here || this.runs.has(messageId)) {
      release();
      return;
    }
    // The freshest copy: the run that ended saved its end; a closed tab's broadcast may be newer.
    let best = here;
    if (stored && (!isRunning(stored) || (stored.lastEventId ?? 0) > (here.lastEventId ?? 0))) best = stored;
    if (!isRunning(best)) {
      // It ended where it ran (and was saved there): show that end.
      if (best !== here) thread.messages[index] = best;
      release();
      return;
    }
    if (!resumable(best)) {
      thread.messages[index] = orphaned(best);
      await threads.save(thread, { touch: false }).catch(() => undefined);
      release();
      return;
    }
    if (best !== here) thread.messages[index] = best;
    const live = thread.messages[index]!;
    const resume = { streamId: best.streamId!, lastEventId: best.lastEventId ?? 0 };
    await this.start(thread, live, { request: { model: best.model ?? "", messages: [] }, resume, release });
  }

  /** Whether `model` takes images, as far as the gateway's model list tells (null: unknown). */
  takesImages(model: string | null): boolean | null {
    const card = this.deps.models.state?.models.find((m) => m.id === model);
    return takesImages(card);
  }

  private modelFor(thread: Thread): string | null {
    return this.deps.models.selected.value ?? thread.model;
  }

  private request(thread: Thread, model: string, end: number): ChatRequest {
    const { settings } = this.deps;
    const request: ChatRequest = { model, messages: wireMessages(thread, end) };
    // Only what the user set: an unset parameter is the model's own default.
    if (settings.temperature !== null) request.temperature = settings.temperature;
    if (settings.maxTokens !== null) request.max_tokens = settings.maxTokens;
    return request;
  }

  /**
   * Start a new answer and stream it: appended, or as a new version of the answer at `branchAt`,
   * or instead of the failed one at `replaceAt`. Resolves when the run has ended.
   */
  private answer(thread: Thread, model: string, at: { branchAt?: number; replaceAt?: number } = {}): Promise<void> {
    const end = at.branchAt ?? at.replaceAt ?? thread.messages.length;
    const request = this.request(thread, model, end);
    const fresh = newAnswer(newId(), model, this.now());
    fresh.streamId = newStreamId();
    if (request.max_tokens !== undefined) fresh.maxTokens = request.max_tokens;
    if (at.branchAt !== undefined) {
      branch(thread.messages, at.branchAt, [fresh]);
    } else if (at.replaceAt !== undefined) {
      const [old] = thread.messages.splice(at.replaceAt);
      if (old?.versions) Object.assign(fresh, { versions: old.versions, version: old.version });
      thread.messages.push(fresh);
    } else {
      thread.messages.push(fresh);
    }
    // The reactive proxy of the message just placed: writes through it update the view.
    const live = thread.messages[thread.messages.length - 1]!;
    return this.start(thread, live, { request });
  }

  private start(thread: Thread, live: ChatMessage, how: RunStart): Promise<void> {
    const controller = new AbortController();
    const done = this.execute(thread, live, how, controller);
    this.runs.set(live.id, { threadId: thread.id, controller, done });
    return done;
  }

  private async execute(thread: Thread, live: ChatMessage, how: RunStart, controller: AbortController): Promise<void> {
    const { threads, auth, gateway, settings } = this.deps;
    this.state.banner = null;
    this.state.running.push(thread.id);
    threads.hold(thread, live.id);
    const draft: ChatMessage = { ...toRaw(live) };
    const frame = this.schedule(() => {
      copyInto(live, draft);
      threads.broadcastMessage(thread.id, live);
      threads.saveSoon(thread);
    });
    const waiting = setTimeout(() => {
      if (draft.state === "connecting") {
        draft.state = "waiting";
        frame.request();
      }
    }, 400);
    const emit = (event: RunEvent): void => {
      applyRunEvent(draft, event, this.now());
      frame.request();
    };
    let outcome: RunOutcome = { kind: "stopped", by: "user" };
    // This tab runs the answer: other tabs mirror it, and take it over if this one closes.
    const release = how.release ?? (await this.locks.acquire(lockName(live.id), { wait: false }));
    try {
      await threads.save(thread).catch(() => undefined); // storage trouble must not stop the answer
      let asked = false;
      while (!controller.signal.aborted) {
        outcome = await this.run({
          ...this.deps.runOptions,
          gateway,
          request: how.request,
          streaming: how.resume ? true : settings.streaming,
          signal: controller.signal,
          emit,
          ...(how.resume ? { resume: how.resume } : { streamId: live.streamId }),
        });
        if (outcome.kind !== "failed" || outcome.error.status !== 401 || controller.signal.aborted) break;
        // Asked again for as long as the key is refused, until the user cancels.
        frame.flush();
        const reason = asked
          ? t("notice.keyRefusedAgain")
          : auth.key
            ? t("notice.keyRefused")
            : outcome.error.message;
        asked = true;
        const key = await auth.ask(reason);
        if (key === null || controller.signal.aborted) break;
        draft.state = "connecting";
        if (!how.resume) draft.streamId = newStreamId();
        live.streamId = draft.streamId;
      }
    } finally {
      clearTimeout(waiting);
      frame.cancel();
      finishMessage(draft, outcome, this.now());
      copyInto(live, draft);
      this.runs.delete(live.id);
      this.state.running.splice(this.state.running.indexOf(thread.id), 1);
      threads.release(thread, live.id);
      try {
        await threads.save(thread);
      } catch {
        // The thread was deleted meanwhile, or storage failed: the view still has the answer.
      }
      threads.broadcastMessage(thread.id, live, { force: true });
      release?.();
    }
    if (outcome.kind === "done") this.deps.onAnswered?.(thread, live);
  }
}
