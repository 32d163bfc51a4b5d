"""Adaptation statistics: the per-dimension mean and std a run standardises a stream's tokens with.

A run's heads standardise every token dimension before anything else. With the training set's statistics a new
voice, microphone or corpus shifts every feature, and the classifier reads that shift as emotion. Standardising
with the statistics of a group of clips known to share a speaker (a dataset's speaker id, a folder, a video's own
windows, a server session) removes the speaker's own baseline; emotion is a deviation from it. The statistics never
use labels. A small group's statistics are shrunk toward the training set's (`Moments.standardiser`), and a lone
clip keeps the training set's.

- `moments`: the sufficient statistics (token count, sums, sums of squares per dimension) of a clip or a group;
- `store_moments`: every clip's moments of a store, read once, and its clips grouped by speaker id;
- `batches`: the statistics a batch's clips are standardised with: each clip's group's, or in adapted training the
  mixture of random groups and lone clips that lets one run answer both;
- `saved`: a speaker's statistics saved once and reused for later clips;
- `sessions`: `dfer serve`'s per-session running statistics, in memory only;
- `settings`: the modes, the defaults a run records, and what a protocol is called.
"""
