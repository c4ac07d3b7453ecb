import type { LogItem } from '../storage/contract/types.js';
import { isParsed, parsedItem } from './entry.js';

/**
 * Items' parsed values, each parsed once: a held item carries its value (`parsedItem`); one not
 * held (unflushed, or read from the store and not kept) has it here, for as long as it lives.
 */
export class ItemValues {
  readonly #values = new WeakMap<LogItem, unknown>();

  /** The parsed values of `items`; throws on invalid JSON. */
  of(items: readonly LogItem[]): unknown[] {
    return items.map((item) => {
      if (isParsed(item)) return item.value;
      if (this.#values.has(item)) return this.#values.get(item);
      const value: unknown = JSON.parse(item.json);
      this.#values.set(item, value);
      return value;
    });
  }

  /** Replaces a stored log's items by held ones (parsed value only), in place: memory keeps one copy of each. */
  keepParsed(log: LogItem[]): void {
    for (let i = 0; i < log.length; i++) {
      const item = log[i] as LogItem;
      if (!isParsed(item)) log[i] = parsedItem(item, this.of([item])[0]);
    }
  }

  /** `item` as memory will hold it: with its parsed value only, if it was read already. */
  held(item: LogItem): LogItem {
    return this.#values.has(item) ? parsedItem(item, this.#values.get(item)) : item;
  }
}
