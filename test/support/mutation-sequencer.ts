import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The order StrykerJS runs a mutant's covering test files in: each project's files that failed
 * last time first (the file that caught the previous mutant often catches its neighbour), then the
 * quickest. Vitest's own order runs the longest first, which suits a full run on many workers, but
 * a mutant run stops at its first failure on one worker, and the long property tests rarely are
 * the first to fail.
 */
export class QuickestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const results = new Map(files.map((file) => [file, this.ctx.cache.getTestSpecificationResult(file)]));
    return [...files].sort((a, b) => {
      if (a.project.name !== b.project.name) return a.project.name < b.project.name ? -1 : 1;
      const [ra, rb] = [results.get(a), results.get(b)];
      if (Boolean(ra?.failed) !== Boolean(rb?.failed)) return ra?.failed ? -1 : 1;
      // A file with no duration yet runs last: it may be one of the slow ones.
      return (ra?.duration ?? Number.POSITIVE_INFINITY) - (rb?.duration ?? Number.POSITIVE_INFINITY);
    });
  }
}
