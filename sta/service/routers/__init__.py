"""One router per resource (studies, patients, thumbnails, me, accounts, exports, sql, ...)."""
