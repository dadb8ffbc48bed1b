/**
 * Sending, stopping, regenerating, editing: the glue between a thread and a run (api/chat.ts).
 *
 * A run's events are folded at once into a plain draft of the answer (so every token lands in
 * the store as it arrives), and the draft is copied into the reactive message at most once per
 * animation frame (a timer when the tab is hidden): the view never renders more often than the
 * screen refreshes, however fast tokens come.
 */
import { reactive, toRaw } from "vue";
import { runChat, type RunEvent, type RunOptions, type RunOutcome } from "../api/chat";
import type { Gateway } from "../api/client";
import type { ChatRequest, WireMessage } from "../api/types";
import { frameScheduler, type FrameScheduler } from "../lib/frame";
import type { AuthStore } from "./auth";
import type { Thread } from "./db";
import { applyRunEvent, finishMessage, newAnswer, type ChatMessage } from "./message";
import type { ModelsStore } from "./models";
import type { Settings } from "./settings";
import { newId, type ThreadStore } from "./threads";

export interface Banner {
  kind: "error" | "ratelimit" | "offline" | "info";
  message: string;
  /** ratelimit: when the wait is over (ms since epoch). */
  until?: number;
}

export interface ChatDeps {
  gateway: Gateway;
  threads: ThreadStore;
  settings: Settings;
  auth: AuthStore;
  models: Pick<ModelsStore, "selected">;
  now?: () => number;
  run?: (options: RunOptions) => Promise<RunOutcome>;
  schedule?: (callback: () => void) => FrameScheduler;
  /** Extra options for every run (tests: backoff, watchdog, network). */
  runOptions?: Partial<RunOptions>;
}

interface ActiveRun {
  threadId: string;
  controller: AbortController;
  done: Promise<void>;
}

/** The conversation as the API wants it: system prompt, then the turns before `end`. */
export function wireMessages(thread: Thread, end: number = thread.messages.length): WireMessage[] {
  const out: WireMessage[] = [];
  if (thread.systemPrompt.trim()) out.push({ role: "system", content: thread.systemPrompt });
  for (const message of thread.messages.slice(0, end)) {
    if (message.role === "user") out.push({ role: "user", content: message.content });
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

export class ChatController {
  readonly state = reactive({
    banner: null as Banner | null,
    /** Threads with an answer streaming in this tab. */
    running: [] as string[],
    /** The system prompt typed before the first message of a new chat. */
    draftSystemPrompt: "",
  });
  private readonly runs = new Map<string, ActiveRun>();
  private readonly now: () => number;
  private readonly run: (options: RunOptions) => Promise<RunOutcome>;
  private readonly schedule: (callback: () => void) => FrameScheduler;

  constructor(private readonly deps: ChatDeps) {
    this.now = deps.now ?? (() => Date.now());
    this.run = deps.run ?? runChat;
    this.schedule = deps.schedule ?? ((callback) => frameScheduler(callback));
  }

  isRunning(threadId: string | undefined | null): boolean {
    return !!threadId && this.state.running.includes(threadId);
  }

  /** Wait for every run of this tab to end (tests, and before closing). */
  async settled(): Promise<void> {
    await Promise.all([...this.runs.values()].map((run) => run.done));
  }

  dismissBanner(): void {
    this.state.banner = null;
  }

  /** Send a user message in the open thread (a new thread if none is open). */
  async send(text: string): Promise<boolean> {
    const content = text.trim();
    if (!content) return false;
    const model = this.deps.models.selected.value;
    if (!model) {
      this.state.banner = { kind: "error", message: "No model is available: the gateway serves none, or could not be reached." };
      return false;
    }
    const { threads } = this.deps;
    let thread = threads.state.current;
    if (thread && this.isRunning(thread.id)) return false;
    if (!thread) {
      thread = await threads.create({ systemPrompt: this.state.draftSystemPrompt, model });
      this.state.draftSystemPrompt = "";
    }
    thread.messages.push({ id: newId(), role: "user", content, createdAt: this.now() });
    thread.model = model;
    void this.answer(thread, model);
    return true;
  }

  /** Answer the last user message again (the last answer is replaced). */
  async regenerate(): Promise<void> {
    const thread = this.deps.threads.state.current;
    if (!thread || this.isRunning(thread.id)) return;
    const last = thread.messages.length - 1;
    if (last < 0) return;
    if (thread.messages[last]!.role === "assistant") thread.messages.splice(last, 1);
    await this.answerWithSelected(thread);
  }

  /** A failed answer again: it and anything after it are replaced. */
  async retry(messageId: string): Promise<void> {
    const thread = this.deps.threads.state.current;
    if (!thread || this.isRunning(thread.id)) return;
    const index = thread.messages.findIndex((m) => m.id === messageId);
    if (index === -1) return;
    thread.messages.splice(index);
    await this.answerWithSelected(thread);
  }

  /** Change a user message, drop everything after it, and ask again. */
  async edit(messageId: string, text: string): Promise<void> {
    const thread = this.deps.threads.state.current;
    const content = text.trim();
    if (!thread || !content || this.isRunning(thread.id)) return;
    const index = thread.messages.findIndex((m) => m.id === messageId);
    if (index === -1 || thread.messages[index]!.role !== "user") return;
    thread.messages[index]!.content = content;
    thread.messages.splice(index + 1);
    await this.answerWithSelected(thread);
  }

  /** Stop every answer streaming in a thread (default: the open one). */
  stop(threadId: string | null = this.deps.threads.state.current?.id ?? null): void {
    for (const run of this.runs.values()) {
      if (threadId === null || run.threadId === threadId) run.controller.abort();
    }
  }

  private async answerWithSelected(thread: Thread): Promise<void> {
    const model = this.deps.models.selected.value ?? thread.model;
    if (!model) return;
    await this.answer(thread, model);
  }

  private request(thread: Thread, model: string, end: number): ChatRequest {
    const { settings } = this.deps;
    const request: ChatRequest = { model, messages: wireMessages(thread, end) };
    if (settings.temperature !== null) request.temperature = settings.temperature;
    if (settings.maxTokens !== null) request.max_tokens = settings.maxTokens;
    return request;
  }

  /** Append an answer to the thread and stream it. Resolves when the run has ended. */
  private answer(thread: Thread, model: string): Promise<void> {
    const request = this.request(thread, model, thread.messages.length);
    thread.messages.push(newAnswer(newId(), model, this.now()));
    // The reactive proxy of the message just pushed: writes through it update the view.
    const live = thread.messages[thread.messages.length - 1]!;
    const controller = new AbortController();
    const done = this.execute(thread, live, request, controller);
    this.runs.set(live.id, { threadId: thread.id, controller, done });
    return done;
  }

  private async execute(thread: Thread, live: ChatMessage, request: ChatRequest, controller: AbortController): Promise<void> {
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
    try {
      await threads.save(thread).catch(() => undefined); // storage trouble must not stop the answer
      let askedForKey = false;
      while (!controller.signal.aborted) {
        outcome = await this.run({
          ...this.deps.runOptions,
          gateway,
          request,
          streaming: settings.streaming,
          signal: controller.signal,
          emit,
        });
        if (outcome.kind === "failed" && outcome.error.status === 401 && !askedForKey && !controller.signal.aborted) {
          askedForKey = true;
          frame.flush();
          const reason = auth.key ? "The saved API key was not accepted." : outcome.error.message;
          const key = await auth.ask(reason);
          if (key !== null && !controller.signal.aborted) {
            draft.state = "connecting";
            continue;
          }
        }
        break;
      }
    } finally {
      clearTimeout(waiting);
      frame.cancel();
      finishMessage(draft, outcome, this.now());
      copyInto(live, draft);
      this.runs.delete(live.id);
      this.state.running.splice(this.state.running.indexOf(thread.id), 1);
      threads.release(thread, live.id);
      this.report(outcome);
      try {
        await threads.save(thread);
      } catch {
        // The thread was deleted meanwhile, or storage failed: the view still has the answer.
      }
      threads.broadcastMessage(thread.id, live, { force: true });
    }
  }

  private report(outcome: RunOutcome): void {
    if (outcome.kind !== "failed") return;
    const { error } = outcome;
    if (error.status === 429) {
      const wait = error.retryAfter ?? 0;
      this.state.banner = { kind: "ratelimit", message: error.message, until: this.now() + wait * 1000 };
    } else if (outcome.interrupted) {
      this.state.banner = {
        kind: "error",
        message: `${error.message} The partial answer is kept; use Retry to ask again.`,
      };
    } else {
      this.state.banner = { kind: "error", message: error.message };
    }
  }
}
