"""The files a user brings, read and checked: model, labels and their order, held-out set.

Each refusal names the file and the fix; `tracking` says whether CI could rebuild from them."""
