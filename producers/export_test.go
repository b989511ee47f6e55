package producers

// MaxSubjects is the number of subjects a publisher keeps.
const MaxSubjects = maxSubjects
