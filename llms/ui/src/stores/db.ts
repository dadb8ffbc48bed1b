/**
 * Threads in IndexedDB (through `idb`): `threads` holds each thread's metadata (listed, sorted
 * by `updatedAt`), `bodies` its messages, so the sidebar never loads every conversation.
 */
import { openDB, type DBSchema, type IDBPDatabase } from "idb";
import type { ChatMessage } from "./message";

export interface ThreadMeta {
  id: string;
  title: string;
  /** The user renamed it: the first message no longer names it. */
  titleEdited: boolean;
  systemPrompt: string;
  model: string | null;
  createdAt: number;
  updatedAt: number;
  messageCount: number;
  /** The start of the last message, for the sidebar. */
  preview: string;
  /** Kept at the top of the sidebar, above the days. */
  pinned?: boolean;
  /**
   * A title was asked of the model after the first answer ("asked"), and it named the chat
   * ("done": the title is the model's, kept like a rename). Imported chats count as asked.
   */
  autoTitle?: "asked" | "done";
}

export interface Thread extends ThreadMeta {
  messages: ChatMessage[];
}

interface Schema extends DBSchema {
  threads: { key: string; value: ThreadMeta; indexes: { updatedAt: number } };
  bodies: { key: string; value: { id: string; messages: ChatMessage[] } };
}

export const DB_NAME = "llms-ui";

export class ThreadDB {
  private db: Promise<IDBPDatabase<Schema>> | null = null;

  constructor(private readonly name: string = DB_NAME) {}

  private open(): Promise<IDBPDatabase<Schema>> {
    this.db ??= openDB<Schema>(this.name, 1, {
      upgrade(db) {
        const threads = db.createObjectStore("threads", { keyPath: "id" });
        threads.createIndex("updatedAt", "updatedAt");
        db.createObjectStore("bodies", { keyPath: "id" });
      },
      blocking: () => {
        // A newer version of the UI wants the database: let it have it.
        void this.close();
      },
    });
    return this.db;
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = null;
    if (db) (await db).close();
  }

  /** Every thread's metadata, newest first. */
  async list(): Promise<ThreadMeta[]> {
    const db = await this.open();
    const out: ThreadMeta[] = [];
    let cursor = await db.transaction("threads").store.index("updatedAt").openCursor(null, "prev");
    while (cursor) {
      out.push(cursor.value);
      cursor = await cursor.continue();
    }
    return out;
  }

  async get(id: string): Promise<Thread | null> {
    const db = await this.open();
    const tx = db.transaction(["threads", "bodies"]);
    const [meta, body] = await Promise.all([tx.objectStore("threads").get(id), tx.objectStore("bodies").get(id)]);
    await tx.done;
    if (!meta) return null;
    return { ...meta, messages: body?.messages ?? [] };
  }

  /** Write a whole thread (metadata and messages) in one transaction. */
  async put(thread: Thread): Promise<void> {
    const db = await this.open();
    const { messages, ...meta } = thread;
    const tx = db.transaction(["threads", "bodies"], "readwrite");
    await Promise.all([
      tx.objectStore("threads").put(meta),
      tx.objectStore("bodies").put({ id: thread.id, messages }),
      tx.done,
    ]);
  }

  /** Update metadata only (rename, system prompt). */
  async putMeta(meta: ThreadMeta): Promise<void> {
    const db = await this.open();
    await db.put("threads", meta);
  }

  async delete(id: string): Promise<void> {
    const db = await this.open();
    const tx = db.transaction(["threads", "bodies"], "readwrite");
    await Promise.all([tx.objectStore("threads").delete(id), tx.objectStore("bodies").delete(id), tx.done]);
  }

  /**
   * Ids of the threads whose title or messages contain `query` (case-insensitive), newest
   * first.
   */
  async search(query: string): Promise<string[]> {
    const needle = query.trim().toLocaleLowerCase();
    const all = await this.list();
    if (!needle) return all.map((t) => t.id);
    const db = await this.open();
    const hits: string[] = [];
    for (const meta of all) {
      if (meta.title.toLocaleLowerCase().includes(needle) || meta.systemPrompt.toLocaleLowerCase().includes(needle)) {
        hits.push(meta.id);
        continue;
      }
      const body = await db.get("bodies", meta.id);
      if (body?.messages.some((m) => m.content.toLocaleLowerCase().includes(needle))) hits.push(meta.id);
    }
    return hits;
  }
}
