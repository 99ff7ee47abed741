// Scores a cache-tests results file as cache-tests.fyi grades it: "graded"
// tests are the required and optimal ones a proxy runs (not the
// informational "check" kind, not browser-only), dependencies honoured.
// Prints each test that did not pass, then the two counts.
import fs from 'node:fs'
import { pathToFileURL } from 'node:url'

const base = process.env.CACHE_TESTS
const tests = (await import(pathToFileURL(`${base}/tests/index.mjs`).href)).default
const { determineTestResult, resultTypes } = await import(pathToFileURL(`${base}/test-engine/lib/results.mjs`).href)
const results = JSON.parse(fs.readFileSync(process.argv[2]))
let graded = 0; let gradedPass = 0; let required = 0; let requiredPass = 0
for (const suite of tests) {
  for (const t of suite.tests) {
    if (t.browser_only) continue
    const kind = t.kind || 'required'
    if (kind === 'check') continue
    const res = determineTestResult(tests, t.id, results)
    const ok = res === resultTypes.pass
    graded++; if (ok) gradedPass++
    if (kind === 'required') { required++; if (ok) requiredPass++ }
    if (!ok) console.log(`${kind === 'required' ? 'R' : 'o'} ${res[2]} ${suite.id}/${t.id}: ${JSON.stringify(results[t.id] ?? null)}`)
  }
}
console.log(`graded ${gradedPass}/${graded}, required ${requiredPass}/${required}`)
