/**
 * The time-matched reference: what a live window is compared with when traffic follows the clock.
 *
 * Live windows arrive in time order. A minute or an hour of traffic holds that hour's departures,
 * that hour's airports, that hour's mix of long and short flights; against a baseline pooled over
 * whole days, every such window looks drifted although nothing upstream changed (measured in
 * bench/drift.ts: `hour` flagged in every time-ordered window, airports in most). So a baseline
 * whose rows have timestamps carries `slots`, the same reference split by time of day (UTC) into
 * slots of a fixed length (core/profile.ts), and a window shorter than a day is compared with the
 * slots it covers, merged: the reference's own traffic at those times of day. Slots finer than
 * an hour matter where traffic has structure within the hour (flights leave in banks: against
 * hourly slots, 20-minute windows of unchanged flights flag their airports half the time).
 *
 * A clock that moves upstream (a time-zone bug putting every hour 3 later) is then caught at once:
 * a window of 14:00 holding hours of 17 is far from what the reference had at 14:00. Judging
 * calendar features by range only (the fallback, and what a manifest may choose with `rangeOnly`)
 * cannot see that.
 *
 * Bounds of the match:
 * - Slots are times of day on one clock, which they name (`wall`: when rows arrived; `event`: the
 *   rows' own time, which replays send as x-event-time), and a window is matched only when its
 *   data clock (TELEMETRY_CLOCK) is that one. flight-delay's are departure times (`event`): served
 *   on the wall clock, requests come at any hour of the flights they ask about, and its windows
 *   are judged against the whole baseline as before.
 * - A window covering several slots gets them merged as the reference saw them: weighted by the
 *   reference's traffic in each, which is the window's own mix when nothing changed and the window
 *   is aligned to slots (the aggregator's windows are: minutes, hours). A window cutting a slot
 *   gets the whole slot.
 * - A window of a day or more, a baseline without slots, or a window at times the reference never
 *   saw gets no time-matched reference (undefined): it is judged against the whole baseline.
 * - Slots match the daily cycle only: day of week and month stay judged by range.
 *
 * A feature that is a reading of the event time itself (its hour, weekday, month: manifest
 * `eventTime`) is checked against the window's own span on the event clock (possibleReadings and
 * core/drift.ts offClock): a window of Tuesday 14:00-15:00 holds hour 14 and weekday 2 only.
 */
import { SketchMergeError } from './errors.ts';
import { CYCLE_MS, EVENT_TIME_READINGS, type EventTimeReading } from './manifest.ts';
import { cloneProfile, mergeInto, validSlotMinutes, type Profile, type SlotClock, type TimeSlots } from './profile.ts';

export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;

/** The slot of the day (UTC) holding the instant `ms`, for slots of `minutes`. */
export function slotOf(ms: number, minutes: number): number {
  const perDay = 1440 / minutes;
  return ((Math.floor(ms / (minutes * MINUTE_MS)) % perDay) + perDay) % perDay;
}

/** The slots of the day a window [start, end) covers, each once, in the order met (at least the start's). */
export function slotsCovering(windowStart: number, windowEnd: number, minutes: number): number[] {
  if (!(Number.isFinite(windowStart) && Number.isFinite(windowEnd) && validSlotMinutes(minutes))) return [];
  const span = minutes * MINUTE_MS;
  const perDay = 1440 / minutes;
  const first = Math.floor(windowStart / span);
  const last = Math.max(first, Math.ceil(windowEnd / span) - 1);
  const out: number[] = [];
  for (let i = first; i <= last && out.length < perDay; i++) out.push(((i % perDay) + perDay) % perDay);
  return out;
}

const merged = new WeakMap<TimeSlots, Map<string, Profile | undefined>>();

/**
 * The baseline's rows at the times of day the window [start, end) covers (see the header), or
 * undefined where there is no such match: also when `clock` (the window's, when the caller knows
 * it) is not the slots' own. Memoised per baseline and set of slots: the aggregator
 * judges many windows against one baseline. The answer is shared: callers must not change it.
 */
export function timeMatchedReference(baseline: Pick<Profile, 'slots'>, windowStart: number, windowEnd: number, clock?: SlotClock): Profile | undefined {
  const slots = baseline.slots;
  if (!slots?.profiles.size || !(windowEnd - windowStart < DAY_MS)) return undefined;
  if (clock !== undefined && clock !== slots.clock) return undefined;
  const covered = slotsCovering(windowStart, windowEnd, slots.minutes)
    .filter((i) => slots.profiles.has(i))
    .sort((a, b) => a - b);
  if (covered.length === 0) return undefined;
  const key = covered.join(',');
  let cache = merged.get(slots);
  if (!cache) merged.set(slots, (cache = new Map()));
  if (cache.has(key)) return cache.get(key);
  let ref: Profile | undefined;
  try {
    for (const i of covered) {
      const s = slots.profiles.get(i)!;
      ref = ref ? mergeInto(ref, s) : cloneProfile(s);
    }
  } catch (e) {
    // Slots that cannot merge (a feature of another sketch kind in one of them: a hand-made
    // baseline) give no time-matched reference rather than an evaluation that throws.
    if (!(e instanceof SketchMergeError)) throw e;
    ref = undefined;
  }
  // Bounded: minute and hour windows need one entry per slot; past 256 (a pushed baseline of
  // one-minute slots, or many multi-slot windows), start over rather than hold them all.
  if (cache.size >= 256) cache.clear();
  cache.set(key, ref);
  return ref;
}

/**
 * Splits reference rows into slots of `minutes` as they are sketched (their times on `clock`): `slotFor(t)` gives the
 * profile of the slot of `t`, made by `create` on first use. What models:build and
 * `driftwatch import` give a baseline its slots with.
 */
export function slotSplitter(minutes: number, clock: SlotClock, create: (slot: number) => Profile): { slotFor(t: number): Profile; slots: TimeSlots } {
  if (!validSlotMinutes(minutes)) throw new RangeError(`slot length ${minutes} minutes does not divide a day`);
  const slots: TimeSlots = { minutes, clock, profiles: new Map() };
  return {
    slots,
    slotFor(t: number): Profile {
      const i = slotOf(t, minutes);
      let p = slots.profiles.get(i);
      if (!p) slots.profiles.set(i, (p = create(i)));
      return p;
    },
  };
}

/** The largest instant a Date holds, either side of the epoch. */
const MAX_DATE_MS = 8.64e15;
/** How finely possibleReadings walks a span, per cycle: every reading of the cycle changes on these steps (UTC). */
const READING_STEP_MS = { day: 3_600_000, week: DAY_MS, year: DAY_MS } as const;

/**
 * Every value the reading `reading` of an instant in [start, end) can take (UTC), or undefined
 * when the span holds the whole cycle (or is not a span): then any value can be. (The edge's
 * windows end past their latest row, core/profiler.ts, so [start, end) holds every row's time.)
 */
export function possibleReadings(reading: EventTimeReading, windowStart: number, windowEnd: number): Set<number> | undefined {
  const r = EVENT_TIME_READINGS[reading];
  // Instants a Date can hold only (±8.64e15 ms): past that a step no longer moves the walk.
  if (!(Math.abs(windowStart) <= MAX_DATE_MS && Math.abs(windowEnd) <= MAX_DATE_MS && windowEnd > windowStart)) return undefined;
  // A span of a whole cycle (core/manifest.ts CYCLE_MS) can hold every reading.
  if (windowEnd - windowStart >= CYCLE_MS[r.cycle]) return undefined;
  const step = READING_STEP_MS[r.cycle];
  const out = new Set<number>();
  // From the start of the step holding windowStart: each step's first instant, then the span's last.
  for (let t = Math.floor(windowStart / step) * step; t < windowEnd; t += step) out.add(r.of(new Date(Math.max(t, windowStart))));
  out.add(r.of(new Date(windowEnd - 1)));
  return out;
}
