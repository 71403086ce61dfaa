// The one canonical record every reader produces and every later stage consumes.
export type Role = 'system' | 'user' | 'assistant';

export interface Turn {
  role: Role;
  content: string;
}

export interface ChatRecord {
  /** Stable id, unique within a set (e.g. "lima-000123", "se-beer-4567"). */
  id: string;
  /** Where it came from (file basename, site name, "wordnet", ...). */
  source: string;
  /** Alternating turns; a training pair is [user, assistant]. */
  turns: Turn[];
}
