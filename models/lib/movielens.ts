/**
 * MovieLens ratings (100,004 ratings, 671 users, 9,066 movies, 1995-2016) from the `movielens`
 * table of Debian's r-cran-dslabs package, exported once to CSV with Rscript. The licence of
 * the data forbids redistributing it: the CSV lives under models/.data/ (git-ignored) and
 * only what is trained from it is committed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface Rating {
  user: number;
  movie: number;
  rating: number;
  /** Seconds since the epoch. */
  time: number;
}

export interface MovieLens {
  ratings: Rating[];
  titles: Map<number, { title: string; year: number; genres: string }>;
}

const DEBIAN_PACKAGES = ['r-base-core', 'r-cran-dslabs'];

function hasRPackage(): boolean {
  const r = spawnSync('Rscript', ['-e', 'quit(status = if (requireNamespace("dslabs", quietly = TRUE)) 0 else 1)'], { stdio: 'ignore' });
  return r.status === 0;
}

/**
 * Makes sure `csvPath` holds the export, installing the Debian packages when this process is
 * allowed to (root, apt-get present); otherwise throws an Error that says exactly what to run.
 */
export function ensureMovieLensCsv(csvPath: string, log: (m: string) => void): void {
  if (existsSync(csvPath)) return;
  if (!hasRPackage()) {
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
    if (!isRoot || !hasApt || process.env.MODELS_NO_APT) {
      throw new Error(
        `MovieLens comes from Debian's r-cran-dslabs package, which is not installed.\n` +
          `Run:  sudo apt-get update && sudo apt-get install -y ${DEBIAN_PACKAGES.join(' ')}\n` +
          `then: npm run models:build`,
      );
    }
    log(`installing Debian packages ${DEBIAN_PACKAGES.join(', ')} (apt-get)`);
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', ...DEBIAN_PACKAGES], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  mkdirSync(dirname(csvPath), { recursive: true });
  log(`exporting dslabs::movielens to ${csvPath}`);
  execFileSync('Rscript', ['-e', `write.csv(dslabs::movielens, ${JSON.stringify(csvPath)}, row.names = FALSE)`], { stdio: 'inherit' });
}

/** RFC 4180 fields of one CSV line (quotes doubled inside quoted fields). */
function parseLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let v = '';
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) throw new Error(`unterminated quote in ${line.slice(0, 80)}`);
        v += line.slice(i, q);
        if (line[q + 1] === '"') {
          v += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      out.push(v);
      i++; // the comma
    } else {
      const c = line.indexOf(',', i);
      const end = c < 0 ? line.length : c;
      out.push(line.slice(i, end));
      i = end + 1;
    }
  }
  return out;
}

export function loadMovieLens(csvPath: string): MovieLens {
  const lines = readFileSync(csvPath, 'utf8').split('\n');
  const header = parseLine(lines[0]);
  const col = (n: string) => {
    const i = header.indexOf(n);
    if (i < 0) throw new Error(`movielens CSV has no column ${n}`);
    return i;
  };
  const [cMovie, cTitle, cYear, cGenres, cUser, cRating, cTime] = ['movieId', 'title', 'year', 'genres', 'userId', 'rating', 'timestamp'].map(col);
  const ratings: Rating[] = [];
  const titles = new Map<number, { title: string; year: number; genres: string }>();
  for (let k = 1; k < lines.length; k++) {
    if (!lines[k]) continue;
    const f = parseLine(lines[k]);
    const movie = Number(f[cMovie]);
    ratings.push({ user: Number(f[cUser]), movie, rating: Number(f[cRating]), time: Number(f[cTime]) });
    if (!titles.has(movie)) titles.set(movie, { title: f[cTitle], year: Number(f[cYear]), genres: f[cGenres] });
  }
  return { ratings, titles };
}
