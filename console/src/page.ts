import type { Admin, Session } from "./api.js";

export interface PageContext {
  admin: Admin;
  session: Session;
  /** Signed in with the admin key (else a studio key, for session.studioId). */
  operator: boolean;
  /** Renders the current page again (after a change). */
  refresh: () => void;
}

/** A page: builds its content from City's answers. */
export type Page = (ctx: PageContext) => Promise<HTMLElement>;
