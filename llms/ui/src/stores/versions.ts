/**
 * Versions of a turn, so that editing a question or regenerating an answer loses nothing.
 *
 * The thread's `messages` are the path shown. The first message of a turn that has versions
 * carries them all in `versions`: each version is that message and every message after it, as
 * it was; the slot of the version shown (`version`) is empty, because those messages are the
 * thread's own from there on. A version's messages keep their own versions, so a tree of
 * edits nests without limit, and all of it is plain data, persisted like the rest of the thread.
 */
import type { ChatMessage } from "./message";

function bare(message: ChatMessage): ChatMessage {
  const { versions: _versions, version: _version, ...rest } = message;
  return rest;
}

/** How many versions the turn starting at `message` has, and which one is shown (1-based). */
export function versionOf(message: ChatMessage): { index: number; count: number } {
  const count = message.versions?.length ?? 1;
  return { index: (message.version ?? 0) + 1, count };
}

/**
 * Keep `messages[index..]` as a version of their turn and show `replacement` there instead
 * (an edited question, a new answer). `replacement` is appended; its first message becomes the
 * turn's head, carrying the versions.
 */
export function branch(messages: ChatMessage[], index: number, replacement: ChatMessage[]): void {
  const old = messages.splice(index);
  const head = old[0];
  const first = replacement[0];
  if (!head || !first) {
    messages.push(...old, ...replacement);
    return;
  }
  const versions = head.versions ? [...head.versions] : [[]];
  versions[head.version ?? 0] = [bare(head), ...old.slice(1)];
  versions.push([]);
  messages.push({ ...bare(first), versions, version: versions.length - 1 }, ...replacement.slice(1));
}

/** Show version `to` (0-based) of the turn starting at `messages[index]`. False if impossible. */
export function switchVersion(messages: ChatMessage[], index: number, to: number): boolean {
  const head = messages[index];
  const versions = head?.versions;
  const from = head?.version ?? 0;
  if (!head || !versions || to === from || to < 0 || to >= versions.length) return false;
  const target = versions[to];
  if (!target?.length) return false;
  const old = messages.splice(index);
  const next = [...versions];
  next[from] = [bare(head), ...old.slice(1)];
  next[to] = [];
  messages.push({ ...bare(target[0]!), versions: next, version: to }, ...target.slice(1));
  return true;
}
