/**
 * The threads: the sidebar's list (newest first), the open thread, search, and the sync between
 * tabs. Every write goes to IndexedDB, then a BroadcastChannel message tells the other tabs,
 * which reload what changed; an answer streaming in one tab is mirrored live in the others.
 */
import { computed, reactive, toRaw, type ComputedRef } from "vue";
import { ThreadDB, type Thread, type ThreadMeta } from "./db";
import { t } from "../i18n";
import type { ChatMessage } from "./message";

export const CHANNEL = "llms-threads";
export const UNTITLED = "New chat";

/** A chat's title as shown: an untitled chat's stored "New chat" in the UI's language. */
export function shownTitle(title: string): string {
  return title === UNTITLED ? t("sidebar.untitled") : title;
}

type SyncMessage =
  | { kind: "saved"; id: string }
  | { kind: "deleted"; id: string }
  | { kind: "message"; threadId: string; message: ChatMessage }
  | { kind: "stop"; threadId: string; messageId: string };

export interface ChannelLike {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
  close(): void;
}

export interface ThreadStoreOptions {
  db?: ThreadDB;
  /** null: no cross-tab sync. */
  channel?: ChannelLike | null;
  now?: () => number;
  newId?: () => string;
}

export interface ThreadState {
  threads: ThreadMeta[];
  current: Thread | null;
  query: string;
  /** Ids matching `query`, or null when there is no query. */
  matches: string[] | null;
  loaded: boolean;
}

/** Plain data (IndexedDB and BroadcastChannel cannot clone Vue proxies). */
export function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(toRaw(value))) as T;
}

export function newId(): string {
  if (typeof crypto !== "undefined" && "randomUUID" in crypto) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

/** A title from the first user message: its first line, at most 60 characters. */
export function titleFrom(text: string): string {
  const line = text.trim().split(/\r?\n/, 1)[0]?.trim() ?? "";
  if (!line) return UNTITLED;
  return line.length > 60 ? `${line.slice(0, 57).trimEnd()}…` : line;
}

function previewOf(messages: ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const text = messages[i]?.content.trim();
    if (text) return text.slice(0, 120).replace(/\s+/g, " ");
  }
  return "";
}

export function metaOf(thread: Thread): ThreadMeta {
  const { messages, ...meta } = thread;
  return { ...meta, messageCount: messages.length, preview: previewOf(messages) };
}

export class ThreadStore {
  readonly state: ThreadState;
  readonly visible: ComputedRef<ThreadMeta[]>;
  private readonly db: ThreadDB;
  private readonly channel: ChannelLike | null;
  private readonly now: () => number;
  private readonly makeId: () => string;
  /** Threads with an answer streaming in this tab, and those answers' ids. */
  private readonly live = new Map<string, { thread: Thread; messages: Set<string> }>();
  /** Deleted here or in another tab: a late save (a run ending) must not bring it back. */
  private readonly deleted = new Set<string>();
  private saveTimers = new Map<string, ReturnType<typeof setTimeout>>();
  /** Another tab asks this one to stop an answer it runs (set by the chat controller). */
  onStopRequest: ((messageId: string) => void) | null = null;
  private lastBroadcast = new Map<string, number>();

  constructor(options: ThreadStoreOptions = {}) {
    this.db = options.db ?? new ThreadDB();
    this.channel = options.channel === undefined ? openChannel() : options.channel;
    this.now = options.now ?? (() => Date.now());
    this.makeId = options.newId ?? newId;
    this.state = reactive<ThreadState>({ threads: [], current: null, query: "", matches: null, loaded: false });
    this.visible = computed(() => {
      const matches = this.state.matches;
      if (matches === null) return this.state.threads;
      const set = new Set(matches);
      return this.state.threads.filter((t) => set.has(t.id));
    });
    if (this.channel) this.channel.onmessage = (event) => void this.receive(event.data as SyncMessage);
  }

  /** An answer of `thread` starts streaming in this tab: keep this very object while it runs. */
  hold(thread: Thread, messageId: string): void {
    const entry = this.live.get(thread.id) ?? { thread, messages: new Set<string>() };
    entry.messages.add(messageId);
    this.live.set(thread.id, entry);
  }

  release(thread: Thread, messageId: string): void {
    const entry = this.live.get(thread.id);
    if (!entry) return;
    entry.messages.delete(messageId);
    if (entry.messages.size === 0) this.live.delete(thread.id);
  }

  /** The message's run lives in this tab (remote copies must not overwrite it). */
  isLocal(messageId: string): boolean {
    for (const entry of this.live.values()) if (entry.messages.has(messageId)) return true;
    return false;
  }

  async load(): Promise<void> {
    const all = await this.db.list();
    // Empty chats (older versions saved one at each New chat): nothing in them to keep. Those
    // of the last minute may be a chat another tab is starting right now.
    const stale = this.now() - 60_000;
    const empty = all.filter((t) => t.messageCount === 0 && !t.systemPrompt.trim() && t.updatedAt < stale);
    for (const meta of empty) await this.db.delete(meta.id);
    this.state.threads = all.filter((t) => !empty.includes(t));
    this.state.loaded = true;
  }

  /** Every stored thread, whole, newest first (for an export). */
  async everything(): Promise<Thread[]> {
    const out: Thread[] = [];
    for (const meta of await this.db.list()) {
      const thread = await this.db.get(meta.id);
      if (thread) out.push(thread);
    }
    return out;
  }

  /** A new, empty thread, saved and opened. */
  async create(init: { systemPrompt?: string; model?: string | null } = {}): Promise<Thread> {
    const now = this.now();
    const thread: Thread = {
      id: this.makeId(),
      title: UNTITLED,
      titleEdited: false,
      systemPrompt: init.systemPrompt ?? "",
      model: init.model ?? null,
      createdAt: now,
      updatedAt: now,
      messageCount: 0,
      preview: "",
      messages: [],
    };
    this.state.current = thread;
    await this.save(thread);
    return this.state.current;
  }

  /** Open a thread by id; null (and nothing open) when it does not exist. */
  async open(id: string): Promise<Thread | null> {
    if (this.state.current?.id === id) return this.state.current;
    const running = this.live.get(id);
    if (running) {
      this.state.current = running.thread;
      return this.state.current;
    }
    const thread = await this.db.get(id);
    if (!thread) {
      this.state.current = null;
      return null;
    }
    // Answers found running are the chat controller's to follow again or mark (adopt).
    this.state.current = thread;
    return this.state.current;
  }

  /** Nothing open: the "new chat" screen. */
  close(): void {
    this.state.current = null;
  }

  async rename(id: string, title: string): Promise<void> {
    const name = title.trim() || UNTITLED;
    await this.updateMeta(id, (meta) => {
      meta.title = name;
      meta.titleEdited = true;
    });
  }

  /** Pin a thread to the top of the list, or unpin it. */
  async setPinned(id: string, pinned: boolean): Promise<void> {
    await this.updateMeta(id, (meta) => {
      if (pinned) meta.pinned = true;
      else delete meta.pinned;
    });
  }

  /**
   * The model's title for a chat (lib/titles.ts), unless the user renamed it meanwhile; null
   * marks the chat as asked (no title is asked for it again). Its place in the list stays.
   */
  async setAutoTitle(id: string, title: string | null): Promise<void> {
    await this.updateMeta(
      id,
      (meta) => {
        if (title !== null && !meta.titleEdited) {
          meta.title = title;
          meta.autoTitle = "done";
        } else {
          meta.autoTitle ??= "asked";
        }
      },
      { touch: false },
    );
  }

  async setSystemPrompt(id: string, text: string): Promise<void> {
    await this.updateMeta(id, (meta) => {
      meta.systemPrompt = text;
    });
  }

  private async updateMeta(id: string, change: (meta: ThreadMeta) => void, options: { touch?: boolean } = {}): Promise<void> {
    const current = this.state.current;
    if (current?.id === id) {
      change(current);
      await this.save(current, options);
      return;
    }
    const thread = await this.db.get(id);
    if (!thread) return;
    change(thread);
    await this.save(thread, { touch: false });
  }

  /** Delete a thread; returns what was deleted (for an undo). */
  async remove(id: string): Promise<Thread | null> {
    const timer = this.saveTimers.get(id);
    if (timer !== undefined) clearTimeout(timer);
    this.saveTimers.delete(id);
    const thread = await this.db.get(id);
    await this.db.delete(id);
    this.forget(id);
    this.post({ kind: "deleted", id });
    return thread;
  }

  /** Put a deleted thread back, as it was. */
  async restore(thread: Thread): Promise<void> {
    const snapshot = plain(thread);
    this.deleted.delete(thread.id);
    await this.db.put(snapshot);
    this.upsertMeta(metaOf(snapshot));
    this.post({ kind: "saved", id: thread.id });
  }

  private forget(id: string): void {
    this.deleted.add(id);
    this.state.threads = this.state.threads.filter((t) => t.id !== id);
    if (this.state.matches) this.state.matches = this.state.matches.filter((m) => m !== id);
    if (this.state.current?.id === id) this.state.current = null;
    this.live.delete(id);
  }

  async search(query: string): Promise<void> {
    this.state.query = query;
    if (!query.trim()) {
      this.state.matches = null;
      return;
    }
    const matches = await this.db.search(query);
    if (this.state.query === query) this.state.matches = matches;
  }

  /**
   * Persist a thread now (metadata, title from the first message, messages) and tell the other
   * tabs. `touch: false` keeps its place in the list.
   */
  async save(thread: Thread, options: { touch?: boolean } = {}): Promise<void> {
    const pending = this.saveTimers.get(thread.id);
    if (pending !== undefined) {
      clearTimeout(pending);
      this.saveTimers.delete(thread.id);
    }
    if (this.deleted.has(thread.id)) return;
    if (options.touch !== false) thread.updatedAt = this.now();
    if (!thread.titleEdited && thread.autoTitle !== "done") {
      const first = thread.messages.find((m) => m.role === "user");
      thread.title = first ? titleFrom(first.content || (first.attachments?.[0]?.name ?? "")) : UNTITLED;
    }
    const snapshot = plain(thread);
    const meta = metaOf(snapshot);
    thread.messageCount = meta.messageCount;
    thread.preview = meta.preview;
    await this.db.put({ ...meta, messages: snapshot.messages });
    this.upsertMeta(meta);
    this.post({ kind: "saved", id: thread.id });
  }

  /** Persist within `delayMs` (coalescing calls): used while an answer streams. */
  saveSoon(thread: Thread, delayMs = 1500): void {
    if (this.saveTimers.has(thread.id)) return;
    this.saveTimers.set(
      thread.id,
      setTimeout(() => {
        this.saveTimers.delete(thread.id);
        void this.save(thread);
      }, delayMs),
    );
  }

  /** Ask the tab that runs an answer to stop it. */
  requestStop(threadId: string, messageId: string): void {
    this.post({ kind: "stop", threadId, messageId });
  }

  /** A message as last saved (null when the thread or the message is gone). */
  async storedMessage(threadId: string, messageId: string): Promise<ChatMessage | null> {
    if (this.deleted.has(threadId)) return null;
    const thread = await this.db.get(threadId);
    return thread?.messages.find((m) => m.id === messageId) ?? null;
  }

  /** Mirror a streaming message to the other tabs (at most every `everyMs`). */
  broadcastMessage(threadId: string, message: ChatMessage, options: { force?: boolean; everyMs?: number } = {}): void {
    if (!this.channel) return;
    const now = this.now();
    const last = this.lastBroadcast.get(message.id) ?? 0;
    if (!options.force && now - last < (options.everyMs ?? 100)) return;
    this.lastBroadcast.set(message.id, now);
    this.post({ kind: "message", threadId, message: plain(message) });
  }

  private upsertMeta(meta: ThreadMeta): void {
    const rest = this.state.threads.filter((t) => t.id !== meta.id);
    const index = rest.findIndex((t) => t.updatedAt <= meta.updatedAt);
    if (index === -1) rest.push(meta);
    else rest.splice(index, 0, meta);
    this.state.threads = rest;
  }

  private post(message: SyncMessage): void {
    try {
      this.channel?.postMessage(message);
    } catch {
      // A closed channel (the page is going away): nothing to sync.
    }
  }

  /** Another tab changed something. */
  async receive(message: SyncMessage): Promise<void> {
    switch (message.kind) {
      case "deleted":
        this.forget(message.id);
        break;
      case "saved": {
        const current = this.state.current;
        const thread = await this.db.get(message.id);
        if (!thread) return;
        this.deleted.delete(message.id); // restored elsewhere (an undo)
        this.upsertMeta(metaOf(thread));
        if (this.state.query) void this.search(this.state.query);
        if (current?.id === message.id && this.state.current === current) {
          // Keep this tab's own running answers; take everything else from the store.
          const local = current.messages.filter((m) => this.isLocal(m.id));
          const messages = thread.messages.map((m) => local.find((l) => l.id === m.id) ?? m);
          for (const m of local) if (!messages.some((x) => x.id === m.id)) messages.push(m);
          Object.assign(current, { ...metaOf(thread), messages });
        }
        break;
      }
      case "stop":
        this.onStopRequest?.(message.messageId);
        break;
      case "message": {
        const current = this.state.current;
        if (!current || current.id !== message.threadId || this.isLocal(message.message.id)) return;
        const index = current.messages.findIndex((m) => m.id === message.message.id);
        if (index !== -1) current.messages[index] = message.message;
        else current.messages.push(message.message);
        break;
      }
    }
  }

  dispose(): void {
    for (const timer of this.saveTimers.values()) clearTimeout(timer);
    this.saveTimers.clear();
    this.channel?.close();
  }
}

function openChannel(): ChannelLike | null {
  if (typeof BroadcastChannel === "undefined") return null;
  return new BroadcastChannel(CHANNEL) as unknown as ChannelLike;
}
