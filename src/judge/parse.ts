// Reading the choice (1..6) out of an LLM judge's reply, strictly: a reply counts only when it
// states exactly one choice. The template asks for the reasoning first and the bare choice on
// the last line, but judges drift (MT-Bench "[[5]]", Prometheus "[RESULT] 4", "**Score: 4**",
// "I would give it a 4", G-Eval "Helpfulness: 4", JSON), so every explicit way of stating a
// choice is read and they must all agree. Numbers that are not stated as a choice (counts,
// steps, the scale itself) are never read as one: there is no "any digit" fallback.

/**
 * Why a judgment is invalid. A researcher reads these in metrics.json and the report:
 * - `truncated`: the reply was cut off by the token limit (finish_reason "length");
 * - `refusal`: the judge declined to grade (the provider's refusal or content filter, or an
 *   apology / "I cannot grade ..." in a reply that states no choice);
 * - `ambiguous`: the reply states two or more different choices;
 * - `out-of-range`: the reply states one value, but not one of the choices 1..6 (0, 7, 4.5, 8/10);
 * - `no-choice`: the reply states no choice at all.
 */
export type InvalidReason = 'truncated' | 'refusal' | 'ambiguous' | 'out-of-range' | 'no-choice';

/** One line of explanation per reason (shown in the report). */
export const INVALID_REASONS: Record<InvalidReason, string> = {
  truncated: 'the reply was cut off by the token limit (finish_reason "length") before it finished',
  refusal: 'the judge declined to grade (provider refusal or content filter, or an apology / "I cannot grade" with no choice stated)',
  ambiguous: 'the reply states two or more different choices (e.g. "Score: 4" and a last line "5", or "4 or 5")',
  'out-of-range': 'the reply states a value that is not one of the choices 1-6 (e.g. 0, 7, 4.5, 8/10), or gives it on another scale (e.g. "5 (out of 5)")',
  'no-choice': 'the reply states no choice; numbers in it are counts, steps or the scale, not a choice',
};

/** How a statement was found (for the detail text and tests). */
export type StatementForm = 'line' | 'lead' | 'brackets' | 'result' | 'tag' | 'label' | 'ratio' | 'verb' | 'prose-label' | 'copula' | 'revision';

/** One statement of a choice found in a reply. `value` is null when it is not a choice 1..6. */
export interface ChoiceStatement {
  value: number | null;
  /** The value as written, e.g. "4", "5/6", "8/10", "4.5". */
  text: string;
  /** The matched text (up to 60 characters), for the invalid detail. */
  excerpt: string;
  form: StatementForm;
}

export type ChoiceReading =
  | { score: number; invalidReason?: undefined; detail?: undefined; statements: ChoiceStatement[] }
  | { score: null; invalidReason: InvalidReason; detail: string; statements: ChoiceStatement[] };

export interface ReplyMeta {
  /** choices[0].finish_reason of the completion: "length" (or "max_tokens") means truncated; "content_filter" a refusal. */
  finishReason?: string | null;
  /** choices[0].message.refusal (OpenAI's structured refusal): a non-empty string means refusal. */
  refusal?: string | null;
}

// The building blocks. Values: digits (1..6 are choices; anything else written in a choice's
// place is an off-scale statement) and, only where the form is explicit (a label or a line of
// its own), the words one..six. "n/6" and "n out of 6" are the value n; another denominator
// ("8/10") makes the statement off-scale. "n-m", "n or m", "n to m" is a hedge: two statements.
const WORD_VALUES: Record<string, number> = { one: 1, two: 2, three: 3, four: 4, five: 5, six: 6 };
const DIGITS = String.raw`\d+(?:\.\d+)?`;
const WORDS = 'one|two|three|four|five|six';
const OPEN = String.raw`[*_"'\x60“”‘’(\[]`;
const CLOSE = String.raw`[*_"'\x60“”‘’)\]]`;

/** A number, optionally over a denominator ("5/6", "5 out of 6"); groups `n` and `d` renamed per use. */
function numberPattern(n: string, d: string, withWords: boolean): string {
  const num = withWords ? `${DIGITS}|${WORDS}` : DIGITS;
  return String.raw`(?<![\p{L}\p{N}.\/])(?<${n}>${num})(?:[ \t]*(?:\/|out[ \t]+of)[ \t]*(?<${d}>\d+))?`;
}

/** A value with its decorations, a hedge's second value included; `withWords` also accepts one..six. Groups n, d, n2, d2. */
function valuePattern(withWords: boolean): string {
  const hedge = String.raw`(?:[ \t]*(?:-|–|—|or|to)[ \t]*${numberPattern('n2', 'd2', withWords)})?`;
  return String.raw`${OPEN}{0,4}${numberPattern('n', 'd', withWords)}${hedge}(?![\p{L}\p{N}]|\.\d|\/\d)${CLOSE}{0,4}`;
}
const VALUE = valuePattern(false);
const VALUE_W = valuePattern(true);

// Labels that declare a choice when followed by ":" / "=" / a table bar (or, on a line of their
// own, by the value alone). Levels ("level 4"), steps and criteria are NOT labels: judges walk
// through the rubric with them. The labels of STRONG_LABEL are only ever used for a grade;
// those of WEAK_LABEL also head prose ("Evaluation: 3 points are covered"), so their value has
// to pass the prose test (see FOLLOWERS).
const LABEL_PREFIX = String.raw`(?<![\p{L}\p{N}])(?:(?:final|overall|total|my|the|helpfulness|llm|judge)[ \t_-]{1,3}){0,3}`;
// "Final: 4" is a grade too (a revised choice ends with it); "As it stands: 4" heads prose as well.
const STRONG_LABEL = String.raw`(?:${LABEL_PREFIX}(?:score|rating|grade|choice|verdict|helpfulness)s?|(?<![\p{L}\p{N}])final)`;
const WEAK_LABEL = String.raw`(?:${LABEL_PREFIX}(?:answer|result|evaluation|judge?ment|assessment|overall)s?|(?<![\p{L}\p{N}])as[ \t]+it[ \t]+stands)`;
/** What may stand between a label and its value: a scale note "(1-6)", "out of 6", then the separator. */
function labelSep(optional: boolean): string {
  const scale = String.raw`(?<scale>[ \t]*[(\[][^()\[\]\n]{0,40}[)\]]|[ \t]+(?:on|from|out[ \t]+of|in)[ \t]+[^:=\n]{1,30}?)?`;
  return String.raw`["'’]?[*_]{0,3}${scale}[*_]{0,3}[ \t]{0,3}(?:[:=：|]|[ \t][-–—][ \t])${optional ? '?' : ''}[ \t*_]{0,6}`;
}

// The rubric's level names (the default template), so "5 - Very helpful" on a line reads 5 and
// "5 - Helpful" (level 4's name) is a contradiction.
const LEVELS: Array<[RegExp, number]> = [
  [/^not\s+helpful$/i, 1],
  [/^somewhat\s+helpful$/i, 2],
  [/^moderately\s+helpful$/i, 3],
  [/^very\s+helpful$/i, 5],
  [/^highly\s+helpful$/i, 6],
  [/^helpful$/i, 4],
];
const LEVEL_NAME = String.raw`(?:not|somewhat|moderately|very|highly)?[ \t]*helpful`;

// Words that may follow a choice stated in prose ("I'd give it a 4 because ..."). Any other word
// means the number counts something ("it lists 3 items", "2 out of 6 criteria"), so the
// statement is dropped.
const FOLLOWERS = new Set(
  ('because since as for given due on in overall and but so with which while whereas though although considering based ' +
    'this the it its i is was here there from at by under not rather instead than also too now then thus hence therefore ' +
    'accordingly reflecting indicating meaning showing that level helpful very highly moderately somewhat ' +
    'point points pts star stars rating score grade mark out')
    .split(' '),
);

// Subjects, auxiliaries and verbs of a first-person grading statement ("I would give it a 4",
// "I'd rate this response 5/6", "I'm going with 5"). Negated ("I would not give it a 6") and
// merely possible ("I could give it a 5") statements are not choices.
const SUBJECT = String.raw`(?<![\p{L}])(?:I|we)`;
const AUX = String.raw`(?<aux>(?:[ \t]*['’](?:d|ll|m|ve)|[ \t]+(?:would|will|shall|should|must|can|could|might|may|do|did|am|are|have|to|going|then|therefore|thus|hence|so|also|now|finally|personally|ultimately|confidently|definitely|happily|not|never|still|only|cannot|can['’]t|won['’]t|wouldn['’]t|couldn['’]t|shouldn['’]t|don['’]t|didn['’]t)){0,6})`;
const VERB = String.raw`(?:give|gave|giving|rate|rated|rating|score|scored|scoring|grade|graded|grading|assign|assigned|assigning|award|awarded|awarding|pick|picked|choose|chose|select|selected|go[ \t]+with|going[ \t]+with|went[ \t]+with|settle[ \t]+on|settled[ \t]+on|opt[ \t]+for|opted[ \t]+for|say|put|mark|marked|land[ \t]+on|landed[ \t]+on)`;
// Up to six words between the verb and the value ("it a", "this submission as a", "it a score
// of"), possibly with a scale note ("on a scale of 1 to 6,"); comparisons and conditions stop it
// ("I rate it higher than 4", "no more than 4").
const SCALE_NOTE = String.raw`\(?(?:on|from|in)[ \t]+(?:a|the)[ \t]+(?:\d+[ \t]*(?:-|–|to)[ \t]*\d+[ \t]+)?(?:scale|range)(?:[ \t]+(?:of|from)[ \t]+\d+[ \t]*(?:-|–|to)[ \t]*\d+)?\)?,?`;
const GAP_STOP = 'scale|range|between|from|than|above|below|instead|rather|except|not|never|no|higher|lower|more|less|least|most|max|maximum|min|minimum|if';
const GAP = String.raw`(?<gap>(?:[ \t]+(?:${SCALE_NOTE}|(?!(?:${GAP_STOP})\b)[\p{L}'’]+,?)){0,6}?)`;
const NEGATION = /\b(?:not|never)\b|n['’]t\b|\bcannot\b/i;
const MERELY_POSSIBLE = /\b(?:could|might|may)\b/i;
// A statement followed by a condition is hypothetical or partial, not the choice: "I would give
// it a 5 if it had headings", "... a 5 with more examples", "... a 6 for accuracy", "... a 5 at
// first". The criteria are aspects other than the one graded (helpfulness, overall); "for its
// clarity" gives a reason, so it is not a condition.
const CRITERION = 'accuracy|correctness|clarity|relevance|completeness|detail|depth|style|structure|organi[sz]ation|format|formatting|fluency|grammar|tone|coherence|conciseness|brevity|creativity|factuality|readability|presentation|content|length|safety|harmlessness|honesty|originality|precision|thoroughness|insight|language|writing|effort';
const HYPOTHETICAL = new RegExp(
  String.raw`^[ \t]*,?[ \t]*(?:(?:if|unless|provided|assuming|were|had|initially|originally)\b|at[ \t]+first\b|with[ \t]+(?:more|better|fewer|less|additional|further|extra|some|a[ \t]+few|improved|added)\b|for[ \t]+(?:${CRITERION})\b)`,
  'i',
);
// The same, written before the statement in its clause: "Initially I would give it a 5",
// "For clarity alone I would give it a 6". The clause starts after the last sentence end or "but".
const CONDITION_BEFORE = new RegExp(String.raw`(?:\b(?:initially|originally|at[ \t]+first)\b|\bfor[ \t]+(?:${CRITERION})\b)(?![^]*(?:[.!?;\n]|\b(?:but|however)\b))`, 'i');
// A scale written after the value: "5 (out of 5)", "3 stars out of 5", "**4**/5", "4 on a scale
// from 1 to 5", "4 (1-5 scale)", "4 on a 10-point scale". Only scale words may stand between
// (a count later in the sentence, "4 - it covers 2 out of 5 steps", is not a scale). Group m is
// the scale's maximum; another maximum than 6 makes the statement off-scale.
const TRAILING_SCALE = new RegExp(
  String.raw`^[ \t]*[(\[,]?[ \t]*(?:(?:on|in|using|a|an|the|stars?|points?|pts)[ \t]+){0,4}(?:(?:out[ \t]+of|\/)[ \t]*(?<m>\d+)|(?:scale|range)[ \t]+(?:of|from)[ \t]+[01][ \t]*(?:-|–|to)[ \t]*(?<m2>\d+)|[01][ \t]*(?:-|–|to)[ \t]*(?<m3>\d+)(?=[ \t]*(?:[)\]]|scale|range|point))|(?<m4>\d+)[ \t]*-?[ \t]*(?:point|pt|star)s?[ \t]+(?:scale|range|system)\b)(?![\p{N}])`,
  'iu',
);
// A scale inside a label's scale note: "Rating (out of 10): 4", "Score (1-10): 4".
const NOTE_SCALE = /(?:out[ \t]+of|\/)[ \t]*(\d+)|(?<![\d.])[01][ \t]*(?:-|–|to)[ \t]*(\d+)|(\d+)[ \t]*-?[ \t]*point/i;
// A scale named before the statement in its clause: "On a 1-10 scale, I'd give it a 4". Scale
// words are required ("2 out of 5 steps, so I'd give it a 4" names no scale).
const SCALE_BEFORE = new RegExp(String.raw`(?:(?:scale|range)[ \t]+(?:of|from)[ \t]+[01][ \t]*(?:-|–|to)[ \t]*(\d+)|(?<![\d.])[01][ \t]*(?:-|–|to)[ \t]*(\d+)[ \t-]*(?:point[ \t]+)?(?:scale|range)|(\d+)[ \t]*-?[ \t]*point[ \t]+(?:scale|range))(?![^]*(?:[.!?;\n]|\b(?:but|however)\b))`, 'i');
// A revision right after a statement: "Score: 3 → after reconsidering, 4", "Rating: 5 -> 4".
const REVISION = new RegExp(String.raw`^[ \t]*(?:→|->|=>|⇒|⟶)[ \t]*(?:[\p{L}'’]+,?[ \t]+){0,4}?${VALUE_W}`, 'iu');

const REFUSAL = new RegExp(
  [
    String.raw`\bI['’]?m\s+sorry\b`,
    String.raw`\bI\s+am\s+sorry\b`,
    String.raw`\bI\s+apologi[sz]e\b`,
    String.raw`^\W*sorry\b`,
    String.raw`\bas\s+an\s+AI\b`,
    String.raw`\bI\s+(?:cannot|can['’]?t|can\s+not|am\s+unable\s+to|['’]m\s+unable\s+to|am\s+not\s+able\s+to|['’]m\s+not\s+able\s+to|won['’]t|will\s+not|must\s+decline\s+to|decline\s+to|refuse\s+to)\s+(?:\w+\s+){0,2}?(?:grade|evaluate|assess|rate|score|judge|review|provide|complete|comply|help|assist|fulfil|fulfill|do)\b`,
    String.raw`\bunable\s+to\s+(?:grade|evaluate|assess|rate|score|judge|review|provide)\b`,
  ].join('|'),
  'im',
);

interface Pattern {
  form: StatementForm;
  re: RegExp;
  /** Prose statements: the next word must be a FOLLOWER (else the number counts something). */
  prose: boolean;
  check?: (m: RegExpExecArray) => boolean;
}

const PATTERNS: Pattern[] = [
  // MT-Bench: "Rating: [[5]]".
  { form: 'brackets', re: new RegExp(String.raw`\[\[[ \t]*${VALUE_W}[ \t]*\]\]`, 'giu'), prose: false },
  // Prometheus: "[RESULT] 4".
  { form: 'result', re: new RegExp(String.raw`\[RESULT\][ \t]*:?[ \t]*${VALUE_W}`, 'giu'), prose: false },
  // "<score>4</score>".
  { form: 'tag', re: new RegExp(String.raw`<(?:score|rating|grade|choice|answer)>[ \t]*${VALUE_W}[ \t]*<\/`, 'giu'), prose: false },
  // "Score: 4", "**Rating:** 5/6", "Final score = 4", "Score (1-6): 4", "| Score | 4 |", {"score": 4}.
  // Same line only: "Evaluation:" followed by a numbered list on the next lines is not a choice.
  { form: 'label', re: new RegExp(String.raw`${STRONG_LABEL}${labelSep(false)}${VALUE_W}`, 'giu'), prose: false },
  { form: 'label', re: new RegExp(String.raw`${WEAK_LABEL}${labelSep(false)}${VALUE_W}`, 'giu'), prose: true },
  // "5 out of 6", "5/6" anywhere (another denominator outside a label or verb is not a statement).
  { form: 'ratio', re: new RegExp(String.raw`(?<![\p{L}\p{N}.\/-])(?<n>${DIGITS})[ \t]*(?:\/|out[ \t]+of)[ \t]*(?<d>6)(?![\p{N}]|\.\d|\/)${CLOSE}{0,4}`, 'giu'), prose: true },
  // "I would give it a 4", "I'd rate this response 5/6", "I'm going with 5".
  {
    form: 'verb',
    re: new RegExp(String.raw`${SUBJECT}${AUX}[ \t]+${VERB}${GAP}[ \t]*:?[ \t]*${VALUE}`, 'giu'),
    prose: true,
    check: (m) => !NEGATION.test(m.groups!.aux!) && !MERELY_POSSIBLE.test(m.groups!.aux!),
  },
  // "My score is 4", "The final rating would be 5", "my final answer is 4".
  {
    form: 'prose-label',
    re: new RegExp(
      String.raw`(?<![\p{L}])(?:(?:my|the|its|this|our)[ \t]+(?:[\p{L}-]+[ \t]+){0,2}?(?:score|rating|grade|choice|verdict|evaluation|assessment|judge?ment)|(?:my[ \t]+(?:final[ \t]+)?|the[ \t]+final[ \t]+)answer)[ \t]+(?<aux>(?:(?:is|would|will|should|must|be|remains|then|therefore|thus|hence|here|clearly|definitely|not|never):?[ \t]+){1,6})(?::[ \t]*)?${VALUE}`,
      'giu',
    ),
    prose: true,
    check: (m) => !NEGATION.test(m.groups!.aux!),
  },
  // "This response is a 4", "it deserves a 5", "the submission falls into level 4". With a plain
  // "is" the value needs an article or a grading noun ("it is a 4", "this is level 4"): "the
  // answer is 4" states what the submission says, not a grade.
  {
    form: 'copula',
    re: new RegExp(
      String.raw`(?<![\p{L}])(?:it|this|that|which|(?:this|the)[ \t]+(?:response|submission|answer|reply|generation|output|one))(?<cop>['’]s|[ \t]+(?:is|was|would[ \t]+be|deserves|merits|earns|gets|receives|warrants|rates|scores|qualifies[ \t]+as|falls[ \t]+(?:in|into|under|at)|fits|belongs[ \t]+(?:in|to)|lands[ \t]+(?:at|on)|should[ \t]+(?:be|get|receive)|would[ \t]+(?:get|receive|earn|merit|deserve)))(?<mid>(?:[ \t]+(?:solidly|clearly|firmly|squarely|definitely|therefore|thus|overall|best))?(?:[ \t]+(?:a|an|as|at|the|in|into)){0,3}(?:[ \t]+(?:solid|clear|strong|firm|weak|low|high|fair|score|rating|grade|level|category|choice|option)(?:[ \t]+of)?)?)[ \t]+${VALUE}`,
      'giu',
    ),
    prose: true,
    check: (m) => !/^(?:['’]s|\s+(?:is|was|would\s+be|should\s+be))$/i.test(m.groups!.cop!) || /\b(?:a|an|score|rating|grade|level|category|choice|option)\b/i.test(m.groups!.mid!),
  },
];

// A line that is nothing but a choice: "5", "**5**", "Choice: 5", "### Score 4", "- 5/6",
// "5 - Very helpful", "**4 (Helpful)**".
const LINE = new RegExp(
  String.raw`^[ \t>#*_•-]{0,12}(?:(?<lab>${STRONG_LABEL}|${WEAK_LABEL})${labelSep(true)})?${VALUE_W}(?:[ \t]*(?:[-–—:][ \t]*)?[("“]?(?<level>${LEVEL_NAME})[)"”]?)?[ \t*_"'\x60“”‘’)\].:!]{0,12}$`,
  'iu',
);
// The first line of a reply that opens with its choice and goes on to explain it:
// "4 - The response is relevant ...", "5 (Very helpful): it ...". Not "1. First, ..." (a list).
const LEAD = new RegExp(String.raw`^[ \t>#*_]{0,12}${VALUE_W}(?:[ \t]*\((?<level>${LEVEL_NAME})\))?[ \t]*[-–—:][ \t]+\S`, 'iu');
const LIST_ITEM = /^\s*(?:[*-]\s*)?\d+\s*[-–—:.)]\s/;

function valueOf(n: string | undefined, d: string | undefined): { value: number | null; text: string } | null {
  if (n === undefined) return null;
  const lower = n.toLowerCase();
  const num = WORD_VALUES[lower] ?? Number(lower);
  const text = d !== undefined ? `${lower}/${d}` : lower;
  const onScale = Number.isInteger(num) && num >= 1 && num <= 6 && (d === undefined || Number(d) === 6);
  return { value: onScale ? num : null, text };
}

function levelValue(name: string | undefined): number | null {
  if (!name) return null;
  const clean = name.replace(/\s+/g, ' ').trim();
  for (const [re, v] of LEVELS) if (re.test(clean)) return v;
  return null;
}

function excerptOf(s: string): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > 60 ? `${one.slice(0, 57)}...` : one;
}

/** The statements one match holds: the value, and the second value of a hedge. */
function statementsOf(groups: Record<string, string | undefined>, form: StatementForm, excerpt: string): ChoiceStatement[] {
  const out: ChoiceStatement[] = [];
  for (const [n, d] of [[groups.n, groups.d], [groups.n2, groups.d2]] as const) {
    const v = valueOf(n, d);
    if (v) out.push({ ...v, excerpt: excerptOf(excerpt), form });
  }
  const level = levelValue(groups.level);
  if (level !== null) out.push({ value: level, text: String(level), excerpt: excerptOf(excerpt), form });
  return out;
}

/** Whether what follows a statement lets it stand (see FOLLOWERS, HYPOTHETICAL). */
function followerAllows(rest: string, prose: boolean): boolean {
  if (/^-\p{L}/u.test(rest)) return false; // "3-step", "2-part"
  if (/^[ \t]*%/.test(rest)) return false; // "40%" is not a choice
  if (HYPOTHETICAL.test(rest)) return false;
  if (prose) {
    const word = /^[ \t]+([\p{L}'’]+)/u.exec(rest);
    if (word && !FOLLOWERS.has(word[1]!.toLowerCase())) return false;
  }
  return true;
}

/** The maximum of a scale written right after a statement ("(out of 5)" -> 5), else null. */
function trailingScale(rest: string): { max: number; text: string } | null {
  const m = TRAILING_SCALE.exec(rest.slice(0, 64));
  if (!m) return null;
  const g = m.groups!;
  return { max: Number(g.m ?? g.m2 ?? g.m3 ?? g.m4), text: m[0] };
}

/** The maximum of a scale named in a label's scale note ("(out of 10)" -> 10), else null. */
function noteScale(note: string | undefined): number | null {
  const m = note ? NOTE_SCALE.exec(note) : null;
  return m ? Number(m[1] ?? m[2] ?? m[3]) : null;
}

/** Statements stated on another scale than 1..6 are off-scale: value null, the scale in the text. */
function offScale(statements: ChoiceStatement[], max: number | null, excerpt: string): ChoiceStatement[] {
  if (max === null || max === 6) return statements;
  return statements.map((s) => ({ ...s, value: null, text: s.text.includes('/') ? s.text : `${s.text}/${max}`, excerpt: excerptOf(excerpt) }));
}

/**
 * The lines the line-by-line reading reads, as [index, trimmed line]: not lines inside a code
 * fence or quoted with ">" (the judge quoting the submission), and not a list, i.e. a run of two
 * or more adjacent lines that are each a bare number ("1\n2\n3": steps or items, not a choice).
 */
function choiceLines(lines: string[]): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  let fenced = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (/^(?:```|~~~)/.test(line)) {
      fenced = !fenced;
      continue;
    }
    if (fenced || line.startsWith('>')) continue;
    out.push([i, line]);
  }
  const bare = (line: string | undefined): boolean => {
    const m = line === undefined ? null : LINE.exec(line);
    return m !== null && m.groups!.lab === undefined && m.groups!.level === undefined;
  };
  return out.filter(([i, line]) => !(bare(line) && (bare(lines[i - 1]?.trim()) || bare(lines[i + 1]?.trim()))));
}

/**
 * Every statement of a choice in `text`, in the order found (forms first, then lines).
 * A statement followed by a revision ("Score: 3 → after reconsidering, 4") is replaced by the
 * revised value; one preceded in its clause by "initially" / "at first" / "for <criterion>" is
 * dropped (see HYPOTHETICAL); one followed by another scale ("5 (out of 5)") is off-scale.
 */
export function choiceStatements(text: string): ChoiceStatement[] {
  const found: ChoiceStatement[] = [];
  for (const p of PATTERNS) {
    p.re.lastIndex = 0;
    for (let m = p.re.exec(text); m !== null; m = p.re.exec(text)) {
      if (m[0].length === 0) {
        p.re.lastIndex++;
        continue;
      }
      let rest = text.slice(m.index + m[0].length);
      if (p.check && !p.check(m)) continue;
      if (CONDITION_BEFORE.test(text.slice(Math.max(0, m.index - 60), m.index))) continue;
      let groups: Record<string, string | undefined> = m.groups ?? {};
      let form: StatementForm = p.form;
      let excerpt = m[0];
      let prose = p.prose;
      // Follow revisions (bounded: each one consumes text).
      for (let r = REVISION.exec(rest.slice(0, 120)); r !== null; r = REVISION.exec(rest.slice(0, 120))) {
        groups = r.groups ?? {};
        form = 'revision';
        excerpt = `${excerpt}${r[0]}`;
        prose = true;
        rest = rest.slice(r[0].length);
      }
      if (!followerAllows(rest, prose)) continue;
      const stated = statementsOf(groups, form, excerpt);
      const scale = trailingScale(rest);
      const before = SCALE_BEFORE.exec(text.slice(Math.max(0, m.index - 60), m.index));
      const max = scale?.max ?? (form === p.form ? noteScale(groups.scale ?? groups.gap) : null) ?? (before ? Number(before[1] ?? before[2] ?? before[3]) : null);
      found.push(...offScale(stated, max, `${excerpt}${scale?.text ?? ''}`));
    }
  }
  const lines = text.split(/\r?\n/);
  const readable = choiceLines(lines);
  for (const [, line] of readable) {
    const m = LINE.exec(line);
    if (m) found.push(...offScale(statementsOf(m.groups ?? {}, 'line', line), noteScale(m.groups?.scale), line));
  }
  const first = readable.find(([, l]) => l.length > 0);
  if (first && !LINE.test(first[1])) {
    const lead = LEAD.exec(first[1]);
    const isList = lines.some((l, i) => i !== first[0] && LIST_ITEM.test(l));
    if (lead && !isList) found.push(...statementsOf(lead.groups ?? {}, 'lead', lines[first[0]]!));
  }
  return found;
}

/**
 * Reads one judge reply strictly. Returns the score when the reply states exactly one choice
 * 1..6 (stated any number of times, in any of the forms below), else null with the reason.
 *
 * Forms read as a statement of a choice:
 * - a line that is only the choice, decorated or labelled: "5", "**5**", "Choice: 5", "5/6",
 *   "5 - Very helpful" (a level name that contradicts the number makes the reply ambiguous);
 * - the first line opening with the choice and going on to explain it: "4 - The response ...";
 * - "[[5]]" (MT-Bench), "[RESULT] 4" (Prometheus), "<score>4</score>";
 * - a label and separator: "Score: 4", "**Rating:** 5", "Helpfulness: 4" (G-Eval),
 *   "Final score = 4", "Score (1-6): 4", "| Score | 4 |", {"score": 4};
 * - "n out of 6", "n/6";
 * - prose: "I would give it a 4", "I'd rate this 5/6", "I'm going with 5", "My score is 4",
 *   "my final answer is 4", "This response is a 4", "it deserves a 5".
 * Prose statements are dropped when negated ("I would not give it a 6", "it's not a 5"), merely
 * possible ("I could give it a 5"), hypothetical ("... a 5 if it had headings") or followed by a
 * noun that makes the number a count ("it lists 3 items", "2 out of 6 criteria"); after a plain
 * "is" the value needs an article or a grading noun ("it is a 4", not "the answer is 4").
 *
 * Not statements: counts, steps ("Step 1"), rubric levels ("level 6 needs headings", "criterion
 * \"5\""), the scale ("1-6", "1 to 6", "on a 1 to 6 scale", "out of 6" with no number before it),
 * decimals and ratios in passing ("3.5", "10/10", "7 out of 10"). A ratio with another
 * denominator or a value outside 1..6 IS read where a label or verb states it ("Score: 8/10",
 * "I give it 7"): that reply is `out-of-range`, since the judge used another scale. So is a value
 * 1..6 given on another scale, written after it ("Score: 5 (out of 5)", "3 stars out of 5", "4 on
 * a 10-point scale", "4 (1-5 scale)"), in a label's note ("Rating (out of 10): 4") or before it in
 * its clause ("On a 1-10 scale, I'd give it a 4"); a scale of 6 there is accepted.
 *
 * Revised and partial choices: "Final: 4" is a label; a statement followed by an arrow and a new
 * value ("Score: 3 → after reconsidering, 4") states the new value; one that is initial, for
 * another criterion or conditional ("Initially I would give it a 5", "a 6 for accuracy", "a 5
 * with more examples", "at first") is dropped. Lines inside a code fence or quoted with ">" and
 * runs of two or more bare-number lines (a list: "1\n2\n3") are not read as a choice line.
 *
 * Order of the verdict: finish_reason "length" -> `truncated` (even if a choice was already
 * written: the judge did not finish); a provider refusal or content filter -> `refusal`; two or
 * more different values -> `ambiguous` (a hedge "4 or 5" / "4-5" counts as two); one value
 * outside 1..6 -> `out-of-range`; no statement -> `refusal` when the reply apologises or says it
 * cannot grade, else `no-choice`. A reply with apologetic or cautious wording that still states
 * one clear choice ("I can't verify the facts, but ... Score: 4") is read: the choice is what
 * the template asks for.
 */
export function readChoice(text: string, meta: ReplyMeta = {}): ChoiceReading {
  const statements = choiceStatements(text);
  const invalid = (invalidReason: InvalidReason, detail: string): ChoiceReading => ({ score: null, invalidReason, detail, statements });
  if (meta.finishReason === 'length' || meta.finishReason === 'max_tokens') {
    return invalid('truncated', `the reply was cut off at the token limit (finish_reason "${meta.finishReason}")`);
  }
  if (typeof meta.refusal === 'string' && meta.refusal.trim() !== '') return invalid('refusal', `the provider returned a refusal: ${excerptOf(meta.refusal)}`);
  if (meta.finishReason === 'content_filter') return invalid('refusal', 'the provider\'s content filter stopped the reply (finish_reason "content_filter")');

  const distinct = new Map<string, ChoiceStatement>();
  for (const s of statements) {
    const key = s.value !== null ? String(s.value) : `off:${s.text}`;
    if (!distinct.has(key)) distinct.set(key, s);
  }
  if (distinct.size > 1) {
    const listed = [...distinct.values()].map((s) => `${s.text} ("${s.excerpt}")`);
    return invalid('ambiguous', `the reply states ${distinct.size} different choices: ${listed.join(', ')}`);
  }
  const only = [...distinct.values()][0];
  if (only && only.value !== null) return { score: only.value, statements };
  if (only) return invalid('out-of-range', `the reply states ${only.text} ("${only.excerpt}"), not a choice 1-6`);
  const refusal = REFUSAL.exec(text);
  if (refusal) return invalid('refusal', `the judge declined to grade ("${excerptOf(refusal[0])}") and stated no choice`);
  return invalid('no-choice', text.trim() === '' ? 'the reply is empty' : 'the reply states no choice 1-6');
}

/** The choice a reply states (see readChoice), else null. */
export function parseChoice(text: string): number | null {
  return readChoice(text).score;
}

/** The reasoning part of a reply: everything before the final choice line (or the whole reply). */
export function reasoningOf(text: string): string {
  const lines = text.replace(/\s+$/, '').split(/\r?\n/);
  const body = LINE.test((lines.at(-1) ?? '').trim()) ? lines.slice(0, -1).join('\n') : lines.join('\n');
  return body.trim();
}
