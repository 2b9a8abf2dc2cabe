/**
 * The names people give with a decision (`--by`). They are self-declared, so four eyes holds only if
 * one person cannot pass for another: a name is refused when it holds invisible characters or mixes
 * scripts, and two names are the same person when they look alike (a "skeleton" in the spirit of
 * Unicode TS #39, over the letters that pass for Latin ones). Pure code: workflows import it.
 */

/** Letters, marks, digits, spaces and . ' ’ _ @ -, starting with a letter or digit. */
const SHAPE = /^[\p{L}\p{N}][\p{L}\p{M}\p{N} .'’_@-]{0,99}$/u;
/** Characters that render as nothing: zero-width joiners, variation selectors, Hangul fillers, … */
const INVISIBLE = /\p{Default_Ignorable_Code_Point}/u;
const SCRIPTS = ['Latin', 'Cyrillic', 'Greek', 'Armenian', 'Georgian', 'Cherokee', 'Hebrew', 'Arabic', 'Devanagari', 'Thai', 'Hangul', 'Han', 'Hiragana', 'Katakana'];
const SCRIPT_TESTS = SCRIPTS.map((s) => [s, new RegExp(`\\p{Script=${s}}`, 'u')] as const);
/** Japanese writes one name in these together. */
const JAPANESE = new Set(['Han', 'Hiragana', 'Katakana']);

/** Why this name cannot stand for a person in a decision, or undefined. */
export function personNameProblem(name: string): string | undefined {
  const n = name.normalize('NFKC').trim();
  if (INVISIBLE.test(n) || !SHAPE.test(n)) {
    return "a name is one line of at most 100 letters, digits, spaces and . ' _ @ -, with no invisible characters";
  }
  const scripts = SCRIPT_TESTS.filter(([, re]) => re.test(n)).map(([s]) => s);
  if (scripts.length > 1 && !scripts.every((s) => JAPANESE.has(s))) {
    return `a name may not mix scripts (${scripts.join(' and ')}): it could pass for someone else's`;
  }
  return undefined;
}

/** Letters of other scripts (and Latin oddities) that pass for Latin letters, lower case. */
const LOOKS_LATIN: Record<string, string> = {
  // Cyrillic
  а: 'a', б: '6', в: 'b', г: 'r', е: 'e', ё: 'e', з: '3', и: 'u', к: 'k', м: 'm', н: 'h', о: 'o', п: 'n', р: 'p', с: 'c', т: 't', у: 'y',
  х: 'x', ь: 'b', ѕ: 's', і: 'i', ї: 'i', ј: 'j', ԁ: 'd', ԛ: 'q', ԝ: 'w', һ: 'h', ӏ: 'l', ү: 'y',
  // Greek
  α: 'a', β: 'b', γ: 'y', ε: 'e', η: 'n', ι: 'i', κ: 'k', μ: 'u', ν: 'v', ο: 'o', ρ: 'p', τ: 't', υ: 'u', χ: 'x', ω: 'w', ζ: 'z',
  // Armenian
  օ: 'o', ս: 'u', ո: 'n', հ: 'h', զ: 'q', ց: 'g', ք: 'p',
  // Latin and digits that pass for other Latin letters
  ı: 'i', ɩ: 'i', ȷ: 'j', ɡ: 'g', ß: 'ss', '0': 'o', '1': 'l', '|': 'l',
};

/** What a name looks like: compatibility forms and accents folded, case and spacing ignored, look-alikes mapped. */
function skeleton(name: string): string {
  const bare = name.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase().replace(/[\s.'’_-]+/g, '');
  return [...bare].map((c) => LOOKS_LATIN[c] ?? c).join('').replace(/rn/g, 'm').replace(/vv/g, 'w');
}

/** True when two names could be read as the same person's. */
export function samePerson(a: string, b: string): boolean {
  return skeleton(a) === skeleton(b);
}
