// Protection: jobs, and later policies, the scheduler, backup and restore of VMs and disks.

export {
  type BackupDisksOptions,
  backupDisks,
  type DiskToBackUp,
  diskSink,
  diskSource,
  restoreToDisk,
} from './disk-backup.js'
export {
  type JobControl,
  type JobInfo,
  type JobProgress,
  JobRegistry,
  type JobStatus,
} from './job-registry.js'
