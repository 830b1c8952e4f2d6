/* fl_keyfile.h: CURVE key files, the one reader shared by fl_server and the fl_client CLI.
 *
 * A key file holds one Z85 key (40 characters: 32 bytes) on a line of its own, its only line
 * that is not blank or a comment (a second key is refused: which one was meant cannot be told;
 * many keys are fl_server's allow-list, another format). '#' starts a
 * comment at the start of a line or after a blank ('#' is also a Z85 character, but no key can
 * start with it); blank lines, surrounding blanks and a '\r' before the '\n' are ignored.
 * `fl_server keygen` heads its files with a comment that names the kind of key they hold
 * ("# fedrop CURVE public key (Z85). ..." / "... secret key ..."): a reader that wants one kind
 * refuses a file whose header names the other. A hand-written file without that header passes as
 * either kind.
 *
 * Plain C, no libzmq: the Z85 check is done here. Nothing here prints; every function is
 * thread-safe (no state beyond its arguments).
 */
#ifndef FL_KEYFILE_H
#define FL_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include "fl_status.h"

#define FL_KEY_Z85_LEN 40           /* a CURVE key in Z85 text */
#define FL_KEYFILE_MAX_BYTES 65536u /* a larger key file is refused unread */

/* Which key a key file must hold (FL_KEY_ANY: either). */
typedef enum fl_key_kind { FL_KEY_ANY = 0, FL_KEY_PUBLIC = 1, FL_KEY_SECRET = 2 } fl_key_kind;

/* Reads the key line of the key file at path into z85 (40 characters and a NUL). want:
 * the kind needed; a file whose keygen header names the other kind is refused. said (may be
 * NULL): the kind the file's header named before the key line, FL_KEY_ANY when none did; set on
 * failure too, so that a caller can word a wrong-kind refusal for its own users. Returns FL_OK;
 * FL_ERR_IO (cannot be read, not a regular file, or larger than FL_KEYFILE_MAX_BYTES: "PATH:
 * reason" in err; a FIFO is refused without waiting for a writer: fl_file_read_regular);
 * FL_ERR_AUTH ("PATH: no key in the file", "PATH:LINE: not a 40-character Z85 key", "PATH:LINE:
 * a line after the key (...)" for a second key or any other line but a comment after it, or
 * "PATH: a public key file (its header says so), where a secret key is needed"); FL_ERR_NOMEM;
 * FL_ERR_INVALID_ARG for a NULL path or z85. z85 is written only on FL_OK. */
fl_status fl_key_file_read(const char *path, fl_key_kind want, char z85[FL_KEY_Z85_LEN + 1],
                           fl_key_kind *said, char *err, size_t errlen);

/* fl_key_file_read on text[0..len) already in memory; name labels the messages in place of the
 * path. FL_ERR_INVALID_ARG for a NULL z85 or a NULL text with len > 0. */
fl_status fl_key_text_parse(const char *text, size_t len, const char *name, fl_key_kind want,
                            char z85[FL_KEY_Z85_LEN + 1], fl_key_kind *said, char *err,
                            size_t errlen);

/* ---- the pieces, for other readers of key text (fl_server's allow-list) -------------------- */

/* Decodes s[0..len), a 40-character Z85 key, into 32 bytes. 1 if it is one; 0 if len is not 40,
 * a character is outside the Z85 alphabet, or a 5-character group encodes more than 2^32 - 1
 * (out is then unspecified). */
int fl_z85_key_decode(uint8_t out[32], const char *s, size_t len);

/* Where key text's first line starts: past a UTF-8 byte-order mark (EF BB BF, which an editor
 * such as Windows Notepad writes at the start of a file), else 0. */
size_t fl_key_text_start(const char *text, size_t len);

/* Iterates over the logical lines of key text: from *pos, fills [*a, *b) with the next line's
 * content (comment and surrounding blanks stripped; a == b for a blank or comment line) and
 * moves *pos past the line's '\n'. Returns 0 at the end of the text. */
int fl_key_next_line(const char *text, size_t len, size_t *pos, size_t *a, size_t *b);

/* The kind a keygen header comment on line[0..len) names, FL_KEY_ANY for any other line. */
fl_key_kind fl_key_header_kind(const char *line, size_t len);

/* "public", "secret" or "any". Never NULL. */
const char *fl_key_kind_name(fl_key_kind k);

#endif
