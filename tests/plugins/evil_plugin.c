/* Not a plugin: a shared library whose constructor leaves a marker file. An adapter
 * folder's prompthost_adapter.json can name it ("plugin": "<path>.so"). */
#include <fcntl.h>
#include <stdio.h> /* P_tmpdir: the system temp dir */
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void on_load(void) {
  const char* marker = getenv("EVIL_MARKER");
  int fd = open(marker ? marker : P_tmpdir "/prompthost-evil-marker", O_WRONLY | O_CREAT | O_TRUNC,
                0644);
  if (fd >= 0) {
    write(fd, "code from the adapter folder ran\n", 33);
    close(fd);
  }
}
